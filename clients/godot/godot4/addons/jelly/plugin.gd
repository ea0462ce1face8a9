@tool
extends EditorPlugin
# Nothing to set up in the editor: JellySession is a script class (class_name) games create.
