class_name JellySession
extends Node
## A game server's session on one player's partition of a Jelly server (docs/http-api.md):
## lock and load, saves that carry the lock's fencing token, save and release, renew, transfer.
##
## Godot 4 edition (written from the Godot 4 documentation and syntax-checked with gdtoolkit; the
## Godot 3 edition beside it runs in Jelly's test suite against a real server). Every call is a
## coroutine: `var r = await session.save("progress", data)`. Every result is a Dictionary a game
## can match on:
##   {"ok": true, ...}
##   {"ok": false, "error": "locked", "holder": {"owner": ..., "expires_at_ms": ...}}
##   {"ok": false, "error": "fenced"}   this session's lock is gone: stop saving
##   {"ok": false, "error": "unavailable" or "disk_full", "retry_after": seconds}
##   {"ok": false, "error": "bad_request", "message": ...}
## Values are stored as Variants (var_to_bytes) under "application/x-godot-variant; version=4".

const VARIANT_CONTENT_TYPE := "application/x-godot-variant; version=4"

var base_url := "http://127.0.0.1:7420"
var api_key := ""
var partition := ""
var owner_name := ""
var ttl_ms := 30000
## Store values as JSON (application/json) instead of Godot Variants: readable by any client, but
## only JSON's kinds survive (a Vector2 comes back as a string).
var json_values := false
## The lock's fencing token (0: never locked) and the objects loaded with it, decoded. After a
## release or a transfer the token is stale: a save then answers "fenced", never lands.
var token := 0
var objects := {}


func _init(
	url := "http://127.0.0.1:7420", key := "", partition_name := "", owner := "", ttl := 30000
) -> void:
	base_url = url
	api_key = key
	partition = partition_name
	owner_name = owner
	ttl_ms = ttl


## Takes the lock and loads every object in one round trip.
func lock_and_load() -> Dictionary:
	var body := {"owner": owner_name, "ttl_ms": ttl_ms, "load": true}
	var r := await _request(HTTPClient.METHOD_POST, _partition_path() + "/lock", body)
	if not r.ok:
		return r
	token = int(r.body.token)
	objects = {}
	for o in r.body.get("objects", []):
		objects[o.key] = _decode_value(o)
	return {"ok": true, "token": token, "objects": objects}


## Saves one object with the lock's token. `value` is any Variant (a Dictionary, an Array...).
func save(key: String, value: Variant) -> Dictionary:
	return await _batch([_put(key, value)], false)


## Saves several objects in one commit (all or nothing).
func save_all(values: Dictionary) -> Dictionary:
	var ops := []
	for key in values:
		ops.append(_put(key, values[key]))
	return await _batch(ops, false)


## The session's last save and the release, in one commit.
func save_and_release(key: String, value: Variant) -> Dictionary:
	return await _batch([_put(key, value)], true)


func renew() -> Dictionary:
	var body := {"token": token, "ttl_ms": ttl_ms}
	var r := await _request(HTTPClient.METHOD_POST, _partition_path() + "/lock/renew", body)
	return r if not r.ok else {"ok": true, "expires_at_ms": r.body.expires_at_ms}


## Hands the partition to another server (a teleport): it gets a new token; this one is fenced.
func transfer(to_owner: String) -> Dictionary:
	var body := {"token": token, "to_owner": to_owner, "ttl_ms": ttl_ms}
	var r := await _request(HTTPClient.METHOD_POST, _partition_path() + "/lock/transfer", body)
	return r if not r.ok else {"ok": true, "token": int(r.body.token)}


func release() -> Dictionary:
	var headers := ["Jelly-Lock-Token: %d" % token]
	return await _request(HTTPClient.METHOD_DELETE, _partition_path() + "/lock", null, headers)


# --- The wire ---


func _put(key: String, value: Variant) -> Dictionary:
	if json_values:
		return {
			"op": "put",
			"key": key,
			"value_base64": Marshalls.utf8_to_base64(JSON.stringify(value)),
			"content_type": "application/json",
		}
	return {
		"op": "put",
		"key": key,
		"value_base64": Marshalls.raw_to_base64(var_to_bytes(value)),
		"content_type": VARIANT_CONTENT_TYPE,
	}


func _batch(ops: Array, release_lock: bool) -> Dictionary:
	var body := {"lock_token": token, "release_lock": release_lock, "operations": ops}
	var r := await _request(HTTPClient.METHOD_POST, _partition_path() + "/batch", body)
	return r if not r.ok else {"ok": true, "version": r.body.version}


func _decode_value(o: Dictionary) -> Variant:
	var bytes := Marshalls.base64_to_raw(o.value_base64)
	var type := str(o.get("content_type", ""))
	if type.begins_with("application/x-godot-variant"):
		return bytes_to_var(bytes)
	if type.begins_with("application/json"):
		var parsed: Variant = JSON.parse_string(bytes.get_string_from_utf8())
		return parsed if parsed != null else bytes
	return bytes


func _partition_path() -> String:
	return "/v1/partitions/" + partition.uri_encode()


func _request(method: int, path: String, body: Variant, extra_headers := []) -> Dictionary:
	var http := HTTPRequest.new()
	add_child(http)
	var headers := PackedStringArray(extra_headers)
	headers.append("Content-Type: application/json")
	if api_key != "":
		headers.append("Authorization: Bearer " + api_key)
	var text := "" if body == null else JSON.stringify(body)
	var err := http.request(base_url + path, headers, method, text)
	if err != OK:
		http.queue_free()
		var why := "cannot send (error %d)" % err
		return {"ok": false, "error": "unavailable", "message": why, "retry_after": 1}
	var done: Array = await http.request_completed
	http.queue_free()
	return _answer(done[0], done[1], done[2], done[3])


func _answer(
	result: int, status: int, headers: PackedStringArray, raw: PackedByteArray
) -> Dictionary:
	if result != HTTPRequest.RESULT_SUCCESS:
		var why := "no answer from Jelly (HTTPRequest result %d)" % result
		return {"ok": false, "error": "unavailable", "message": why, "retry_after": 1}
	var body: Variant = {}
	if raw.size() > 0:
		var parsed: Variant = JSON.parse_string(raw.get_string_from_utf8())
		if parsed != null:
			body = parsed
	if status >= 200 and status < 300:
		return {"ok": true, "status": status, "body": body}
	var is_dict := body is Dictionary
	var answer := {
		"ok": false,
		"status": status,
		"error": str(body.get("error", "http_%d" % status)) if is_dict else "http_%d" % status,
		"message": str(body.get("message", "")) if is_dict else "",
	}
	if status == 423:
		if is_dict and body.has("owner"):
			answer.holder = {"owner": body.owner, "expires_at_ms": body.get("expires_at_ms", 0)}
		# Our own token refused: the lock is gone (expired, broken, moved to another server).
		if token != 0 and (not answer.has("holder") or answer.holder.owner != owner_name):
			answer.error = "fenced"
	if status == 503 or status == 507:
		answer.retry_after = 1
		for h in headers:
			if h.to_lower().begins_with("retry-after:"):
				answer.retry_after = int(h.substr(12).strip_edges())
	return answer
