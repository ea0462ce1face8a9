import JellyCore
