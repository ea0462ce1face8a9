extends SceneTree
# A session against a real jelly serve (JELLY_URL), run by the test suite with godot3-server.
# Prints PASS at the end; any failed check prints FAIL and quits with 1 (Godot exits 0 on a
# parse error, so the suite also requires the PASS line).

var failures := 0

func check(ok: bool, what: String) -> void:
	if not ok:
		failures += 1
		print("FAIL ", what)

func _init():
	call_deferred("run")

func run():
	var url := OS.get_environment("JELLY_URL")
	var Session = load("res://addons/jelly/jelly_session.gd")
	var a = Session.new(url, "", "player-1", "gs-a", 5000)
	var b = Session.new(url, "", "player-1", "gs-b", 5000)
	root.add_child(a)
	root.add_child(b)

	var r = yield(a.lock_and_load(), "completed")
	check(r.ok and r.objects.empty(), "a locks and loads an empty player: %s" % str(r))
	r = yield(a.save("progress", {"level": 3, "pos": Vector2(1, 2), "items": ["sword", "shield"]}), "completed")
	check(r.ok and r.version > 0, "a saves: %s" % str(r))
	r = yield(b.lock_and_load(), "completed")
	check(not r.ok and r.error == "locked" and r.holder.owner == "gs-a", "b is refused while a holds it: %s" % str(r))
	r = yield(a.renew(), "completed")
	check(r.ok, "a renews: %s" % str(r))
	var old_token = a.token
	r = yield(a.save_and_release("progress", {"level": 4, "pos": Vector2(1, 2), "items": ["sword", "shield"]}), "completed")
	check(r.ok, "a saves and releases: %s" % str(r))

	r = yield(b.lock_and_load(), "completed")
	check(r.ok, "b locks and loads after the release: %s" % str(r))
	var progress = b.objects.get("progress", {})
	check(progress is Dictionary and progress.get("level") == 4 and progress.get("pos") == Vector2(1, 2), "b loads what a saved: %s" % str(progress))
	check(b.token > old_token, "b's token is above a's: %d > %d" % [b.token, old_token])

	# a's old token is stale: its save is fenced, never applied.
	a.token = old_token
	r = yield(a.save("progress", {"level": 99}), "completed")
	check(not r.ok and r.error == "fenced", "a stale holder is fenced: %s" % str(r))

	# JSON values, when the game prefers them.
	b.json_values = true
	r = yield(b.save("profile", {"name": "ana", "level": 4}), "completed")
	check(r.ok, "b saves JSON: %s" % str(r))

	r = yield(b.transfer("gs-c"), "completed")
	check(r.ok and r.token > 0, "b transfers to gs-c: %s" % str(r))
	r = yield(b.save("progress", {"level": 5}), "completed")
	check(not r.ok and r.error == "fenced", "after the transfer b is fenced: %s" % str(r))

	if failures == 0:
		print("PASS")
		quit(0)
	else:
		quit(1)
