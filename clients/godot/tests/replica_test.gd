extends SceneTree
# Two devices' replicas of one player against a real jelly serve (JELLY_URL): offline edits, a
# conflict resolved by the game, a game server's session winning, a queue surviving a restart.
# Prints PASS at the end; FAIL lines and exit 1 otherwise.

var failures := 0

func check(ok: bool, what: String) -> void:
	if not ok:
		failures += 1
		print("FAIL ", what)

# The game's rule for settings both devices changed: add the volumes.
func resolve(key, base, mine, theirs):
	return {"volume": mine.volume + theirs.volume, "base_was": base.volume if base is Dictionary else -1}

func _init():
	call_deferred("run")

func run():
	var url := OS.get_environment("JELLY_URL")
	var Replica = load("res://addons/jelly/jelly_replica.gd")
	var Session = load("res://addons/jelly/jelly_session.gd")
	var d1 = Replica.new(url, "", "player-9", "device-1")
	var d2 = Replica.new(url, "", "player-9", "device-2")
	d1.resolver = funcref(self, "resolve")
	root.add_child(d1)
	root.add_child(d2)

	d1.write("settings", {"volume": 3})
	check(d1.read("settings").volume == 3, "a local edit reads back at once")
	var r = yield(d1.sync(), "completed")
	check(r.ok and not d1.has_pending(), "device 1 pushes: %s" % str(r))
	r = yield(d2.sync(), "completed")
	check(r.ok and d2.read("settings") is Dictionary and d2.read("settings").volume == 3, "device 2 pulls it: %s" % str(d2.read("settings")))

	# Both edit offline; device 2 syncs first; device 1's edit conflicts and the game resolves it.
	d1.write("settings", {"volume": 5})
	d2.write("settings", {"volume": 7})
	r = yield(d2.sync(), "completed")
	check(r.ok, "device 2 pushes its edit: %s" % str(r))
	r = yield(d1.sync(), "completed")
	check(r.ok and r.pending == 1, "device 1's edit conflicted and the resolution is queued: %s" % str(r))
	r = yield(d1.sync(), "completed")
	check(r.ok and not d1.has_pending(), "the resolution is pushed: %s" % str(r))
	check(d1.read("settings").volume == 12 and d1.read("settings").base_was == 3, "resolved from base, mine and theirs: %s" % str(d1.read("settings")))
	r = yield(d2.sync(), "completed")
	check(d2.read("settings").volume == 12, "device 2 converges: %s" % str(d2.read("settings")))

	# A game server's session: the device's push is refused and waits; the session's save wins.
	var gs = Session.new(url, "", "player-9", "gs-1", 10000)
	root.add_child(gs)
	r = yield(gs.lock_and_load(), "completed")
	check(r.ok and r.objects.settings.volume == 12, "the game server loads what the devices agreed: %s" % str(r))
	d1.write("coins", 10)
	r = yield(d1.sync(), "completed")
	check(not r.ok and r.error == "locked" and r.holder.owner == "gs-1", "no client write lands during a session: %s" % str(r))
	r = yield(gs.save_and_release("settings", {"volume": 1}), "completed")
	check(r.ok, "the session saves and releases: %s" % str(r))

	# The app restarts: a new replica object of the same device finds its queue in user://.
	d1.queue_free()
	var again = Replica.new(url, "", "player-9", "device-1")
	root.add_child(again)
	check(again.has_pending() and again.read("coins") == 10, "the queue survived the restart")
	r = yield(again.sync(), "completed")
	check(r.ok and not again.has_pending(), "pushed after the session: %s" % str(r))
	check(again.read("settings").volume == 1, "the session's save is what the device sees: %s" % str(again.read("settings")))
	r = yield(d2.sync(), "completed")
	check(d2.read("coins") == 10, "device 2 gets the coins: %s" % str(d2.read("coins")))

	if failures == 0:
		print("PASS")
		quit(0)
	else:
		quit(1)
