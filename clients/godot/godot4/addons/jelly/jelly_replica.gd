class_name JellyReplica
extends Node
# A game client's replica of its player's partition (docs/sync.md): reads without a round trip,
# edits while offline (kept in user:// across restarts), and `sync()` that pulls what changed
# on the server and pushes the queued edits. When the server's object changed since an edit was
# made, `resolver` decides: resolver.call(key, base, mine, theirs) returns the value to push
# (null: drop the edit). While a game server holds the session lock, pushes are refused and the
# queue waits: the session always wins.
#
# Godot 4 edition (from the Godot 4 documentation, checked by gdtoolkit):
# `var r = await replica.sync()`.

signal changed(key, value)
signal rejected(key, reason)
signal reset

const VARIANT_CONTENT_TYPE := "application/x-godot-variant; version=4"

var base_url := "http://127.0.0.1:7420"
var token := ""  # the client's token (a JWT the game's backend issues), or an API key
var partition := ""
var client_id := ""
var resolver := Callable()
var storage_path := ""

# The server's objects as last pulled: key -> {"value", "version"}; the queue of local edits.
var objects := {}
var pending := []
var next_id := 1
var cursor := 0
var epoch := ""


func _init(url := "", auth := "", partition_name := "", client := "") -> void:
	base_url = url
	token = auth
	partition = partition_name
	client_id = client
	var names := [partition.md5_text(), client_id.md5_text()]
	storage_path = "user://jelly_replica_%s_%s.save" % names
	_load()


# The value the game sees: the newest queued edit, else the server's.
func read(key: String) -> Variant:
	for i in range(pending.size() - 1, -1, -1):
		if pending[i].key == key:
			return null if pending[i].op == "delete" else pending[i].value
	return objects[key].value if objects.has(key) else null


func write(key: String, value: Variant) -> void:
	_enqueue(key, "put", value)


func delete(key: String) -> void:
	_enqueue(key, "delete", null)


func has_pending() -> bool:
	return not pending.is_empty()


# Pulls the server's changes, then pushes the queue. {"ok": true} or an error Dictionary
# ("locked" while a game server holds the player; "unavailable" offline).
func sync() -> Dictionary:
	var r := await _pull()
	if not r.ok:
		return r
	if pending.is_empty():
		return {"ok": true}
	return await _push()


func _enqueue(key: String, op: String, value: Variant) -> void:
	var base_version := 0
	var base: Variant = null
	if objects.has(key):
		base_version = int(objects[key].version)
		base = objects[key].value
	var m := {"id": next_id, "key": key, "op": op, "value": value}
	m.base_version = base_version
	m.base = base
	pending.append(m)
	next_id += 1
	_save()
	changed.emit(key, value)


func _pull() -> Dictionary:
	while true:
		var path := (
			"/v1/partitions/%s/changes?limit=1000&since=%d" % [partition.uri_encode(), cursor]
		)
		if epoch != "":
			path += "&epoch=" + epoch.uri_encode()
		var r := await _request(HTTPClient.METHOD_GET, path, null)
		if not r.ok:
			return r
		var b: Dictionary = r.body
		if b.get("reset", false):
			objects = {}
			reset.emit()
		for c in b.changes:
			if c.get("deleted", false):
				objects.erase(c.key)
				changed.emit(c.key, null)
			else:
				var value: Variant = _decode(c)
				objects[c.key] = {"value": value, "version": int(c.version)}
				changed.emit(c.key, value)
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
			wire.value_base64 = Marshalls.raw_to_base64(var_to_bytes(m.value))
			wire.content_type = VARIANT_CONTENT_TYPE
		mutations.append(wire)
	var path := "/v1/partitions/%s/sync" % partition.uri_encode()
	var body := {"client_id": client_id, "mutations": mutations}
	var r := await _request(HTTPClient.METHOD_POST, path, body)
	if not r.ok:
		return r
	var done := int(r.body.last_mutation_id)
	var resolved := []
	for result in r.body.results:
		var m: Variant = _pending_with_id(int(result.id))
		if m == null:
			continue
		var outcome: Dictionary = result
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
				var current: Dictionary = outcome.current
				var theirs: Variant = null
				if not current.get("deleted", false) and current.has("value_base64"):
					theirs = _decode(current)
				var theirs_version := int(current.get("version", 0))
				if current.get("deleted", false):
					objects.erase(m.key)
				else:
					objects[m.key] = {"value": theirs, "version": theirs_version}
				var value: Variant = m.value
				if resolver.is_valid():
					value = resolver.call(m.key, m.base, m.value, theirs)
				if value != null:
					resolved.append({"key": m.key, "value": value})
			"rejected":
				rejected.emit(m.key, str(outcome.get("error", "")))
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


func _pending_with_id(id: int) -> Variant:
	for m in pending:
		if m.id == id:
			return m
	return null


# A later edit of a key the push applied is based on the version it got.
func _rebase(key: String, version: int, after_id: int) -> void:
	for m in pending:
		if m.key == key and m.id > after_id:
			m.base_version = version


func _decode(c: Dictionary) -> Variant:
	var bytes := Marshalls.base64_to_raw(c.value_base64)
	if str(c.get("content_type", "")).begins_with("application/x-godot-variant"):
		return bytes_to_var(bytes)
	return bytes


func _save() -> void:
	var f := FileAccess.open(storage_path, FileAccess.WRITE)
	if f != null:
		var saved := {"objects": objects, "pending": pending, "next_id": next_id}
		saved.cursor = cursor
		saved.epoch = epoch
		f.store_var(saved)


func _load() -> void:
	var f := FileAccess.open(storage_path, FileAccess.READ)
	if f == null:
		return
	var saved: Variant = f.get_var()
	if saved is Dictionary:
		objects = saved.get("objects", {})
		pending = saved.get("pending", [])
		next_id = int(saved.get("next_id", 1))
		cursor = int(saved.get("cursor", 0))
		epoch = str(saved.get("epoch", ""))


func _request(method: int, path: String, body: Variant) -> Dictionary:
	var http := HTTPRequest.new()
	add_child(http)
	var headers := PackedStringArray(["Content-Type: application/json"])
	if token != "":
		headers.append("Authorization: Bearer " + token)
	var text := "" if body == null else JSON.stringify(body)
	var err := http.request(base_url + path, headers, method, text)
	if err != OK:
		http.queue_free()
		return {"ok": false, "error": "unavailable", "retry_after": 1}
	var done: Array = await http.request_completed
	http.queue_free()
	if done[0] != HTTPRequest.RESULT_SUCCESS:
		return {"ok": false, "error": "unavailable", "retry_after": 1}
	var raw: PackedByteArray = done[3]
	var parsed: Variant = JSON.parse_string(raw.get_string_from_utf8()) if raw.size() > 0 else null
	var b: Variant = parsed if parsed != null else {}
	var status: int = done[1]
	if status >= 200 and status < 300:
		return {"ok": true, "body": b}
	var error := str(b.get("error", "http_%d" % status)) if b is Dictionary else "http_%d" % status
	var answer := {"ok": false, "status": status, "error": error}
	if status == 423 and b is Dictionary and b.has("owner"):
		answer.holder = {"owner": b.owner, "expires_at_ms": b.get("expires_at_ms", 0)}
	return answer
