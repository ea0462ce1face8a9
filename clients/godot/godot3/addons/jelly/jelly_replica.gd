extends Node
class_name JellyReplica
# A game client's replica of its player's partition (docs/sync.md): reads without a round trip,
# edits while offline (kept in user:// across restarts), and `sync()` that pulls what changed
# on the server and pushes the queued edits. When the server's object changed since an edit was
# made, `resolver` decides: resolver.call_func(key, base, mine, theirs) returns the value to push
# (null: drop the edit). While a game server holds the session lock, pushes are refused and the
# queue waits: the session always wins.
#
# Godot 3 edition (tested against a real `jelly serve`). `var r = yield(replica.sync(), "completed")`.

signal changed(key, value)
signal rejected(key, reason)
signal reset()

const VARIANT_CONTENT_TYPE = "application/x-godot-variant; version=3"

var base_url := "http://127.0.0.1:7420"
var token := ""            # the client's token (a JWT the game's backend issues), or an API key
var partition := ""
var client_id := ""
var resolver: FuncRef = null
var storage_path := ""

# The server's objects as last pulled: key -> {"value", "version"}; the queue of local edits.
var objects := {}
var pending := []
var next_id := 1
var cursor := 0
var epoch := ""

func _init(url := "", auth := "", partition_name := "", client := ""):
	base_url = url
	token = auth
	partition = partition_name
	client_id = client
	storage_path = "user://jelly_replica_%s_%s.save" % [partition.md5_text(), client_id.md5_text()]
	_load()

# The value the game sees: the newest queued edit, else the server's.
func read(key: String):
	for i in range(pending.size() - 1, -1, -1):
		if pending[i].key == key:
			return null if pending[i].op == "delete" else pending[i].value
	return objects[key].value if objects.has(key) else null

func write(key: String, value) -> void:
	_enqueue(key, "put", value)

func delete(key: String) -> void:
	_enqueue(key, "delete", null)

func has_pending() -> bool:
	return not pending.empty()

# Pulls the server's changes, then pushes the queue. {"ok": true} or an error Dictionary
# ("locked" while a game server holds the player; "unavailable" offline).
func sync() -> Dictionary:
	var r = yield(_pull(), "completed")
	if not r.ok:
		return r
	if pending.empty():
		return {"ok": true}
	return yield(_push(), "completed")

func _enqueue(key: String, op: String, value) -> void:
	var base_version := 0
	var base = null
	if objects.has(key):
		base_version = int(objects[key].version)
		base = objects[key].value
	pending.append({"id": next_id, "key": key, "op": op, "value": value, "base_version": base_version, "base": base})
	next_id += 1
	_save()
	emit_signal("changed", key, value)

func _pull() -> Dictionary:
	while true:
		var path := "/v1/partitions/%s/changes?limit=1000&since=%d" % [partition.percent_encode(), cursor]
		if epoch != "":
			path += "&epoch=" + epoch.percent_encode()
		var r = yield(_request(HTTPClient.METHOD_GET, path, null), "completed")
		if not r.ok:
			return r
		var b = r.body
		if b.get("reset", false):
			objects = {}
			emit_signal("reset")
		for c in b.changes:
			if c.get("deleted", false):
				objects.erase(c.key)
				emit_signal("changed", c.key, null)
			else:
				var value = _decode(c)
				objects[c.key] = {"value": value, "version": int(c.version)}
				emit_signal("changed", c.key, value)
		cursor = int(b.next)
		epoch = str(b.epoch)
		if not b.get("more", false):
			break
	_save()
	return {"ok": true}

func _push() -> Dictionary:
	var mutations := []
	for m in pending:
		var wire := {"id": m.id, "key": m.key, "op": m.op, "base_version": m.base_version}
		if m.op == "put":
			wire.value_base64 = Marshalls.raw_to_base64(var2bytes(m.value))
			wire.content_type = VARIANT_CONTENT_TYPE
		mutations.append(wire)
	var r = yield(_request(HTTPClient.METHOD_POST, "/v1/partitions/%s/sync" % partition.percent_encode(), {"client_id": client_id, "mutations": mutations}), "completed")
	if not r.ok:
		return r
	var done := int(r.body.last_mutation_id)
	var resolved := []
	for result in r.body.results:
		var m = _pending_with_id(int(result.id))
		if m == null:
			continue
		var outcome = result
		if result.status == "duplicate":
			outcome = result.result if result.result != null else {"status": "applied"}
		match outcome.status:
			"applied":
				if outcome.has("version"):
					if m.op == "delete":
						objects.erase(m.key)
					else:
						objects[m.key] = {"value": m.value, "version": int(outcome.version)}
					_rebase(m.key, int(outcome.version), m.id)
			"conflict":
				var current = outcome.current
				var theirs = null
				if not current.get("deleted", false) and current.has("value_base64"):
					theirs = _decode(current)
				var theirs_version := int(current.get("version", 0))
				if current.get("deleted", false):
					objects.erase(m.key)
				else:
					objects[m.key] = {"value": theirs, "version": theirs_version}
				var value = m.value
				if resolver != null:
					value = resolver.call_func(m.key, m.base, m.value, theirs)
				if value != null:
					resolved.append({"key": m.key, "value": value})
			"rejected":
				emit_signal("rejected", m.key, str(outcome.get("error", "")))
	# Drop what the server processed; the rest waits for the next push.
	var rest := []
	for m in pending:
		if m.id > done:
			rest.append(m)
	pending = rest
	for e in resolved:
		_enqueue(e.key, "put", e.value)
	_save()
	return {"ok": true, "pending": pending.size()}

func _pending_with_id(id: int):
	for m in pending:
		if m.id == id:
			return m
	return null

# A later edit of a key the push applied is based on the version it got.
func _rebase(key: String, version: int, after_id: int) -> void:
	for m in pending:
		if m.key == key and m.id > after_id:
			m.base_version = version

func _decode(c: Dictionary):
	var bytes = Marshalls.base64_to_raw(c.value_base64)
	if str(c.get("content_type", "")).begins_with("application/x-godot-variant"):
		return bytes2var(bytes)
	return bytes

func _save() -> void:
	var f := File.new()
	if f.open(storage_path, File.WRITE) == OK:
		f.store_var({"objects": objects, "pending": pending, "next_id": next_id, "cursor": cursor, "epoch": epoch})
		f.close()

func _load() -> void:
	var f := File.new()
	if not f.file_exists(storage_path) or f.open(storage_path, File.READ) != OK:
		return
	var saved = f.get_var()
	f.close()
	if saved is Dictionary:
		objects = saved.get("objects", {})
		pending = saved.get("pending", [])
		next_id = int(saved.get("next_id", 1))
		cursor = int(saved.get("cursor", 0))
		epoch = str(saved.get("epoch", ""))

func _request(method: int, path: String, body) -> Dictionary:
	var http := HTTPRequest.new()
	add_child(http)
	var headers := PoolStringArray(["Content-Type: application/json"])
	if token != "":
		headers.append("Authorization: Bearer " + token)
	var text := "" if body == null else to_json(body)
	var err := http.request(base_url + path, headers, true, method, text)
	if err != OK:
		http.queue_free()
		return {"ok": false, "error": "unavailable", "retry_after": 1}
	var done = yield(http, "request_completed")
	http.queue_free()
	if done[0] != HTTPRequest.RESULT_SUCCESS:
		return {"ok": false, "error": "unavailable", "retry_after": 1}
	var parsed = JSON.parse(done[3].get_string_from_utf8()) if done[3].size() > 0 else null
	var b = parsed.result if parsed != null and parsed.error == OK else {}
	if done[1] >= 200 and done[1] < 300:
		return {"ok": true, "body": b}
	var answer := {"ok": false, "status": done[1], "error": str(b.get("error", "http_%d" % done[1])) if b is Dictionary else "http_%d" % done[1]}
	if done[1] == 423 and b is Dictionary and b.has("owner"):
		answer.holder = {"owner": b.owner, "expires_at_ms": b.get("expires_at_ms", 0)}
	return answer
