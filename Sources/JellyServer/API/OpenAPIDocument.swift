/// The OpenAPI 3.1 document of HTTP API v1, served at `GET /v1/openapi.yaml`. Kept here (not as a
/// resource file) so the single `jelly` binary carries it. OpenAPITests checks every response of
/// a walk over the whole API against it (scripts/check-openapi.py), and that every response it
/// documents occurs.
enum OpenAPIDocument {
    static let yaml = """
    openapi: 3.1.0
    info:
      title: Jelly HTTP API
      version: "1"
      description: |
        Partitions of objects with versions (strictly increasing per partition), and one session lock per partition with
        fencing tokens. Errors are {"error": CODE, "message": TEXT}. Partition and key names are
        percent-encoded path segments: 1-128 / 1-512 bytes of UTF-8, no control characters, no
        "/", not "." or "..". When several errors apply, the first of 400/413, 401/403, 423, 412,
        404 wins. A request that carries a lock token is accepted only if it is the partition's
        current lock; one without a token only while the partition is unlocked. With auth
        configured, every path but /v1/health and /v1/openapi.yaml needs a bearer credential (an
        API key or a client JWT): 401 when it is missing or invalid, 403 without the right. PUT
        takes Jelly-Read (server|owner|public) and Jelly-Write (server|owner) headers; GET
        answers carry them. Whole numbers (tokens, versions, TTLs, limits) are decimal digits only,
        in headers, queries and JSON bodies: no sign, fraction, exponent or quotes. HEAD is
        answered wherever GET is; a wrong method on a known path is 405 with Allow; an unknown
        path 404; both with an Error body. Expect: 100-continue is answered at once (any other
        expectation 417); HTTP/1.1 requests need Host (400 without).
    security:
      - bearer: []
      - {}
    paths:
      /v1/health:
        get:
          security: []
          responses:
            "200": {description: "The server is up.", content: {application/json: {schema: {$ref: "#/components/schemas/Health"}}}}
            "503":
              description: "The store cannot take writes now: a cluster node without NATS or a stream leader (status unavailable), or an embedded store whose disk is full or failed (status degraded: reads work). detail says why; retry after Retry-After seconds."
              headers: {Retry-After: {required: true, schema: {type: string}}}
              content: {application/json: {schema: {$ref: "#/components/schemas/Unhealthy"}}}
      /v1/openapi.yaml:
        get:
          security: []
          responses:
            "200": {description: "This document.", content: {application/yaml: {schema: {type: string}}}}
      /v1/partitions/{partition}/objects/{key}:
        parameters:
          - {$ref: "#/components/parameters/partition"}
          - {$ref: "#/components/parameters/key"}
        put:
          parameters:
            - {$ref: "#/components/parameters/lockToken"}
            - {$ref: "#/components/parameters/ifMatch"}
            - {name: If-None-Match, in: header, schema: {type: string, const: "*"}, description: "Write only if the object does not exist (not with If-Match)."}
            - {name: Content-Type, in: header, schema: {$ref: "#/components/schemas/ContentType"}, description: "Stored with the value (default application/octet-stream; curl --data-binary sends application/x-www-form-urlencoded unless told otherwise)."}
            - {name: Jelly-Read, in: header, schema: {type: string, enum: [server, owner, public]}, description: "Who may read the object (game servers only set it; default server)."}
            - {name: Jelly-Write, in: header, schema: {type: string, enum: [server, owner]}, description: "Who may write the object (game servers only set it; default server)."}
          requestBody: {required: true, content: {"*/*": {schema: {type: string, format: binary, maxLength: 16777216}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "Replaced.", headers: {ETag: {$ref: "#/components/headers/ETag"}}, content: {application/json: {schema: {$ref: "#/components/schemas/Written"}}}}
            "201": {description: "Created.", headers: {ETag: {$ref: "#/components/headers/ETag"}}, content: {application/json: {schema: {$ref: "#/components/schemas/Written"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "412": {$ref: "#/components/responses/PreconditionFailed"}
            "413": {$ref: "#/components/responses/TooLarge"}
            "423": {$ref: "#/components/responses/Locked"}
            "503": {$ref: "#/components/responses/Unavailable"}
        get:
          parameters:
            - {name: If-None-Match, in: header, schema: {type: string}, description: 'Quoted versions, "V": 304 when the object is at one of them.'}
          responses:
            "200":
              description: "The value, with its stored Content-Type."
              headers:
                ETag: {$ref: "#/components/headers/ETag"}
                Jelly-Read: {$ref: "#/components/headers/JellyRead"}
                Jelly-Write: {$ref: "#/components/headers/JellyWrite"}
              content: {"*/*": {schema: {type: string, format: binary}}}
            "304":
              description: "Not modified."
              headers: {ETag: {$ref: "#/components/headers/ETag"}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "404": {$ref: "#/components/responses/NotFound"}
        delete:
          parameters:
            - {$ref: "#/components/parameters/lockToken"}
            - {$ref: "#/components/parameters/ifMatch"}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "204":
              description: "Deleted."
              headers: {Jelly-Previous-Version: {required: true, description: "The version the object had.", schema: {type: string, pattern: "^[0-9]+$"}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "404": {$ref: "#/components/responses/NotFound"}
            "412": {$ref: "#/components/responses/PreconditionFailed"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/objects:
        parameters: [{$ref: "#/components/parameters/partition"}]
        get:
          parameters:
            - {name: after, in: query, schema: {$ref: "#/components/schemas/Key"}, description: "The page starts after this key (the previous page's next)."}
            - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 100}}
          responses:
            "200": {description: "A page in ascending byte order of key; a client sees only what it may read.", content: {application/json: {schema: {$ref: "#/components/schemas/Listing"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
      /v1/partitions/{partition}/batch:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/Batch"}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "Committed as one version.", content: {application/json: {schema: {$ref: "#/components/schemas/BatchResult"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "412": {$ref: "#/components/responses/PreconditionFailed"}
            "413": {$ref: "#/components/responses/TooLarge"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/Acquire"}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "Acquired (or extended for the same owner).", content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "423": {$ref: "#/components/responses/Locked"}
        get:
          responses:
            "200": {description: "The live lock.", content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "404": {$ref: "#/components/responses/NotFound"}
        delete:
          parameters: [{name: Jelly-Lock-Token, in: header, required: true, schema: {$ref: "#/components/schemas/TokenText"}, description: "The lock's token (400 without it)."}]
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "204": {description: "Released."}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock/renew:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {type: object, required: [token, ttl_ms], properties: {token: {$ref: "#/components/schemas/Token"}, ttl_ms: {$ref: "#/components/schemas/TTL"}}}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "Renewed.", content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock/transfer:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {type: object, required: [token, to_owner, ttl_ms], properties: {token: {$ref: "#/components/schemas/Token"}, to_owner: {$ref: "#/components/schemas/Owner"}, ttl_ms: {$ref: "#/components/schemas/TTL"}}}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "Transferred with a new token.", content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock/break:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          description: "Administrative (admin API key): removes the lock whoever holds it."
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "The lock that was removed.", content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "404": {$ref: "#/components/responses/NotFound"}
      /v1/partitions/{partition}/changes:
        parameters: [{$ref: "#/components/parameters/partition"}]
        get:
          description: "The partition's change feed (docs/sync.md): objects changed after the cursor since, each once at its latest version, in version order, deleted ones as tombstones. since absent or 0: the whole state. A cursor below floor, or an epoch other than the store's, is answered with reset and the whole state. With wait_ms and nothing new, waits for a commit (or the lock to change). A client token sees what it may read of its own partition; the cursor moves past the rest."
          parameters:
            - {name: since, in: query, schema: {type: string, pattern: "^[0-9]{1,20}$"}, description: "The next of the previous answer (0: the whole state)."}
            - {name: limit, in: query, schema: {type: string, pattern: "^(1000|[1-9][0-9]{0,2})$"}, description: "Changes per page, 1-1000 (default 100); a page never splits a commit."}
            - {name: wait_ms, in: query, schema: {type: string, pattern: "^([0-9]{1,4}|[1-5][0-9]{4}|60000)$"}, description: "Wait up to this many ms (0-60000) for a change."}
            - {name: epoch, in: query, schema: {type: string}, description: "The epoch of the previous answer."}
          responses:
            "200": {description: "A page of changes.", content: {application/json: {schema: {$ref: "#/components/schemas/Changes"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
      /v1/me:
        get:
          description: "Who the credential is: its role (admin, server or client; admin when auth is off) and its key's name or its client's partition. The web console (/console) uses it."
          responses:
            "200":
              description: "The caller."
              content:
                application/json:
                  schema: {type: object, additionalProperties: false, required: [role], properties: {role: {type: string, enum: [admin, server, client]}, name: {type: string}, partition: {type: string}}}
            "401": {$ref: "#/components/responses/Unauthorized"}
      /v1/partitions/{partition}/objects/{key}/preview:
        parameters: [{$ref: "#/components/parameters/partition"}, {$ref: "#/components/parameters/key"}]
        get:
          description: "The value as text for an operator (game servers and admins): a Godot Variant (application/x-godot-variant, or octet-stream bytes that read as one) decoded to JSON, JSON indented, UTF-8 text, or hex (the first 16 KiB)."
          responses:
            "200":
              description: "The preview."
              content:
                application/json:
                  schema:
                    type: object
                    additionalProperties: false
                    required: [key, version, content_type, size, decoded_as, text]
                    properties:
                      key: {type: string}
                      version: {$ref: "#/components/schemas/Version"}
                      content_type: {type: string}
                      size: {type: integer}
                      decoded_as: {type: string, enum: [godot, json, text, hex]}
                      text: {type: string}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "404": {$ref: "#/components/responses/NotFound"}
      /v1/partitions:
        get:
          description: "The store's partitions holding an object or a live lock, in byte order of name, each with its object count and lock. For operators and the console (game servers and admins; not clients): it reads the whole index."
          parameters:
            - {name: prefix, in: query, schema: {type: string}, description: "Only partitions whose name starts with this."}
            - {name: after, in: query, schema: {type: string}, description: "The next of the previous page."}
            - {name: limit, in: query, schema: {type: string, pattern: "^(1000|[1-9][0-9]{0,2})$"}, description: "Partitions per page, 1-1000 (default 100)."}
          responses:
            "200":
              description: "A page of partitions."
              content:
                application/json:
                  schema:
                    type: object
                    additionalProperties: false
                    required: [partitions]
                    properties:
                      next: {type: string}
                      partitions:
                        type: array
                        items:
                          type: object
                          additionalProperties: false
                          required: [partition, objects]
                          properties:
                            partition: {type: string}
                            objects: {type: integer, minimum: 0}
                            lock: {$ref: "#/components/schemas/Lock"}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "503": {$ref: "#/components/responses/Unavailable"}
      /v1/admin/backup:
        post:
          description: "Administrative (admin API key): an online backup of the embedded store, taken while saves go on, into the directory name inside the server's backup directory (jelly serve --backup-dir; default the data directory's path with -backups appended), on the server's machine. A second backup under the same name copies only what is new. Verify with jelly backup verify, restore with jelly restore (docs/operations.md)."
          requestBody:
            required: true
            content:
              application/json:
                schema: {type: object, required: [name], properties: {name: {type: string, pattern: "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"}, rate_mib: {type: [integer, "null"], minimum: 0, maximum: 1048576, description: "Copy at most this many MiB/s (0: no cap; absent or null: the server's backup_rate_mib, 200 by default)."}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "The backup is complete.", content: {application/json: {schema: {$ref: "#/components/schemas/Backup"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "501": {description: "Cluster mode: back up the JetStream streams instead.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
            "503": {$ref: "#/components/responses/Unavailable"}
      /v1/watch:
        get:
          description: 'A WebSocket for game backends (API keys): send {"partition": P, "since": V, "epoch": E} to watch a partition, {"partition": P, "unwatch": true} to stop; each message is a Changes body with partition. Without the upgrade (Connection: Upgrade, Upgrade: websocket) it is 400. The same upgrade on /v1/partitions/{partition}/changes watches one partition (client tokens too).'
          responses:
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
      /v1/partitions/{partition}/sync:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          description: "A client replica's push (docs/sync.md): mutations decided in order and committed in one batch with the client's progress. A repeated id is a duplicate with its first result; a base_version other than the object's version (0: must not exist) a conflict with the current object; a mutation the caller may not make is rejected; the rest applied. One mutation per key per push: the rest waits for the next (results stop before it). While a game server holds the lock: 423, nothing processed."
          requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/SyncRequest"}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "The results.", content: {application/json: {schema: {$ref: "#/components/schemas/SyncResult"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "413": {$ref: "#/components/responses/TooLarge"}
            "423": {$ref: "#/components/responses/Locked"}
            "503": {$ref: "#/components/responses/Unavailable"}
      /v1/partitions/{partition}/streams/{stream}:
        parameters: [{$ref: "#/components/parameters/partition"}, {$ref: "#/components/parameters/stream"}]
        post:
          description: "Appends one frame (the body) to the stream (docs/streams.md), or with Content-Type application/vnd.jelly.frames+json an atomic batch {frames: [{value_base64, base_version}]}. Under the lock rule of writes (Jelly-Lock-Token while locked: a stale holder's frames are refused, 423). The first append makes the stream with retain_frames, retain_bytes and retain_ms (or the server's defaults); an append that names others replaces them. With durable=true answers once the frames are on disk. For frames every tick without waiting, use the WebSocket (mode=append)."
          parameters:
            - {$ref: "#/components/parameters/lockToken"}
            - {name: Jelly-Base-Version, in: header, schema: {type: string, pattern: "^ *[0-9]{1,20} *$"}, description: "The version of the save the frame builds on (default 0)."}
            - {name: durable, in: query, schema: {type: string, enum: ["true", "false"]}}
            - {name: retain_frames, in: query, schema: {type: string, pattern: "^[1-9][0-9]{0,19}$"}, description: "At least 1; at most the server's maximum (default 10,000,000 frames, 16 GiB, 366 days)."}
            - {name: retain_bytes, in: query, schema: {type: string, pattern: "^[1-9][0-9]{0,19}$"}, description: "At least 1; at most the server's maximum (default 10,000,000 frames, 16 GiB, 366 days)."}
            - {name: retain_ms, in: query, schema: {type: string, pattern: "^[1-9][0-9]{0,19}$"}, description: "At least 1; at most the server's maximum (default 10,000,000 frames, 16 GiB, 366 days)."}
          requestBody: {required: false, description: "The frame (no body: an empty frame).", content: {application/octet-stream: {schema: {type: string, format: binary}}, application/vnd.jelly.frames+json: {schema: {$ref: "#/components/schemas/FramesRequest"}}}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "200": {description: "Appended: the frames' sequences (seq is the last).", content: {application/json: {schema: {$ref: "#/components/schemas/Appended"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "413": {$ref: "#/components/responses/TooLarge"}
            "423": {$ref: "#/components/responses/Locked"}
            "503": {$ref: "#/components/responses/Unavailable"}
        get:
          description: "A page of the stream's frames from sequence from, oldest first; with wait_ms and nothing there, waits for an append. next is where to read from next; first the oldest frame kept (above from: the frames between were dropped). The same path with a WebSocket upgrade tails (from, pace=original, speed, follow) or appends without answers (mode=append, binary messages): docs/streams.md."
          parameters:
            - {name: from, in: query, schema: {type: string, pattern: "^[0-9]{1,20}$"}}
            - {name: limit, in: query, schema: {type: string, pattern: "^(1000|[1-9][0-9]{0,2})$"}, description: "Frames per page, 1-1000 (default 100)."}
            - {name: wait_ms, in: query, schema: {type: string, pattern: "^([0-9]{1,4}|[1-5][0-9]{4}|60000)$"}}
          responses:
            "200": {description: "A page of frames.", content: {application/json: {schema: {$ref: "#/components/schemas/Frames"}}}}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
        delete:
          description: "With before: drops the frames below that sequence. Without: removes the stream (its frames and retention). Under the lock rule of writes."
          parameters:
            - {$ref: "#/components/parameters/lockToken"}
            - {name: before, in: query, schema: {type: string, pattern: "^[0-9]{1,20}$"}}
          responses:
            "507": {$ref: "#/components/responses/DiskFull"}
            "204": {description: "Trimmed or removed."}
            "400": {$ref: "#/components/responses/BadRequest"}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
            "423": {$ref: "#/components/responses/Locked"}
      /metrics:
        get:
          description: "Prometheus text exposition (API keys only when auth is configured)."
          responses:
            "200": {description: "Metrics.", content: {text/plain: {schema: {type: string}}}}
            "401": {$ref: "#/components/responses/Unauthorized"}
            "403": {$ref: "#/components/responses/Forbidden"}
    components:
      securitySchemes:
        bearer: {type: http, scheme: bearer, description: "An API key from the config file, or a client JWT whose sub is a partition."}
      parameters:
        partition: {name: partition, in: path, required: true, schema: {$ref: "#/components/schemas/Partition"}}
        key: {name: key, in: path, required: true, schema: {$ref: "#/components/schemas/Key"}}
        stream: {name: stream, in: path, required: true, schema: {$ref: "#/components/schemas/Partition"}, description: "A stream name: the same rules as a partition name."}
        lockToken: {name: Jelly-Lock-Token, in: header, schema: {$ref: "#/components/schemas/TokenText"}, description: "The lock's token, when the partition is locked."}
        ifMatch: {name: If-Match, in: header, schema: {type: string, pattern: '^ *"[0-9]{1,20}" *$'}, description: 'Quoted version, "V": write only if the object is at V.'}
      headers:
        ETag: {required: true, description: 'The version, quoted: "V".', schema: {type: string, pattern: '^"[0-9]+"$'}}
        JellyRead: {required: true, schema: {type: string, enum: [server, owner, public]}}
        JellyWrite: {required: true, schema: {type: string, enum: [server, owner]}}
      responses:
        BadRequest: {description: "Malformed request: bad names, headers or body (also a wrong method, 405).", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        Unauthorized: {description: "Missing or invalid credentials.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        Forbidden: {description: "A valid identity without the right.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        NotFound: {description: "No such object, or no live lock.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        PreconditionFailed: {description: "A condition (If-Match, If-None-Match, if_version, if_absent) failed; nothing was written.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        TooLarge: {description: "The value or request body is over the limit.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        Locked: {description: "The lock is held by another owner or the token is stale; owner and expires_at_ms name the holder when there is one.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        DiskFull:
          description: "The disk holding the store is full; nothing was written. Writes resume by themselves once space is freed (the store looks every second); reads keep working. Retry after Retry-After seconds."
          headers: {Retry-After: {required: true, schema: {type: string}}}
          content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
        Unavailable: {description: "Try again: the store cannot serve now, or a client's write kept losing its compare-and-set.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
      schemas:
        Health: {type: object, required: [status], properties: {status: {type: string, const: ok}}}
        Partition: {type: string, minLength: 1, maxLength: 128, pattern: "^[^/\\u0000-\\u001f\\u007f-\\u009f]+$", not: {enum: [".", ".."]}, description: "1-128 bytes of UTF-8 (percent-encoded in paths)."}
        Key: {type: string, minLength: 1, maxLength: 512, pattern: "^[^/\\u0000-\\u001f\\u007f-\\u009f]+$", not: {enum: [".", ".."]}, description: "1-512 bytes of UTF-8 (percent-encoded in paths)."}
        Owner: {type: string, minLength: 1, maxLength: 128, pattern: "^[^/\\u0000-\\u001f\\u007f-\\u009f]+$", not: {enum: [".", ".."]}, description: "1-128 bytes of UTF-8."}
        ContentType: {type: string, maxLength: 255, pattern: "^[\\u0020-\\u007e]*$", description: "Printable ASCII, up to 255 bytes."}
        Token: {type: integer, minimum: 0, maximum: 18446744073709551615, description: "A lock token: a whole number (stale unless it is the partition's live lock: 423)."}
        TokenText: {type: string, pattern: "^ *[0-9]{1,20} *$", description: "A lock token, as decimal digits."}
        Version: {type: integer, minimum: 0, maximum: 18446744073709551615}
        TTL: {type: integer, minimum: 100, maximum: 86400000, description: "Lease length in ms, within the server's lock_ttl_ms_min and _max (defaults 100 ms and 24 h)."}
        Frames:
          type: object
          additionalProperties: false
          required: [frames, next, first]
          properties:
            next: {$ref: "#/components/schemas/Version"}
            first: {$ref: "#/components/schemas/Version"}
            frames:
              type: array
              items:
                type: object
                additionalProperties: false
                required: [seq, time_ms, base_version, value_base64]
                properties:
                  seq: {$ref: "#/components/schemas/Version"}
                  time_ms: {type: integer, description: "When the store committed it, ms since 1970."}
                  base_version: {$ref: "#/components/schemas/Version"}
                  value_base64: {type: string, contentEncoding: base64}
        FramesRequest:
          type: object
          required: [frames]
          properties:
            frames:
              type: array
              minItems: 1
              items: {type: object, required: [value_base64], properties: {value_base64: {type: string, contentEncoding: base64}, base_version: {type: [integer, "null"], minimum: 0, maximum: 18446744073709551615, description: "Absent or null: the Jelly-Base-Version header, else 0."}}}
        Appended: {type: object, additionalProperties: false, required: [seq, seqs], properties: {seq: {$ref: "#/components/schemas/Version"}, seqs: {type: array, items: {$ref: "#/components/schemas/Version"}}}}
        Backup:
          type: object
          additionalProperties: false
          required: [directory, version, files, bytes_copied, bytes_reused, files_deleted, milliseconds]
          properties:
            directory: {type: string, description: "Where the backup is, on the server's machine."}
            version: {$ref: "#/components/schemas/Version"}
            files: {type: integer}
            bytes_copied: {type: integer, description: "Bytes copied now."}
            bytes_reused: {type: integer, description: "Bytes an earlier backup under this name already held."}
            files_deleted: {type: integer, description: "Files of the earlier backup no longer needed."}
            milliseconds: {type: integer}
        Unhealthy: {type: object, required: [status, detail], properties: {status: {type: string, enum: [unavailable, degraded], description: "unavailable: the store cannot serve (a cluster node without NATS). degraded: reads work, writes are refused (a full disk until space is freed, a failed disk until a restart); detail says why."}, detail: {type: string}}}
        Read: {type: string, enum: [server, owner, public], description: "Who may read an object: game servers, also its partition's client, or every client."}
        Write: {type: string, enum: [server, owner], description: "Who may write an object: game servers, or also its partition's client (while unlocked)."}
        Error:
          type: object
          required: [error, message]
          properties:
            error: {type: string, enum: [bad_request, not_found, locked, precondition_failed, too_large, unauthorized, forbidden, unavailable, disk_full, not_implemented, internal]}
            message: {type: string}
            owner: {type: string, description: "With 423: the holder of the lock."}
            expires_at_ms: {type: integer, description: "With 423: when the holder's lock expires (wall-clock ms)."}
        Written:
          type: object
          required: [version, previous_version]
          properties:
            version: {type: integer}
            previous_version: {type: [integer, "null"], description: "The version before this write; null when the object did not exist."}
        Listing:
          type: object
          required: [objects, next]
          properties:
            objects:
              type: array
              items:
                type: object
                required: [key, version, size, content_type, read, write]
                properties: {key: {type: string}, version: {type: integer}, size: {type: integer}, content_type: {type: string}, read: {$ref: "#/components/schemas/Read"}, write: {$ref: "#/components/schemas/Write"}}
            next: {type: [string, "null"], description: "The after of the next page; null on the last page."}
        Batch:
          type: object
          required: [operations]
          properties:
            lock_token: {oneOf: [{$ref: "#/components/schemas/Token"}, {type: "null"}]}
            release_lock: {type: [boolean, "null"], description: "Release the lock in the same commit (needs lock_token)."}
            operations:
              type: array
              maxItems: 1000
              description: "At least one, unless release_lock (a bare release); no key twice; put without content_type stores application/octet-stream."
              items:
                type: object
                required: [op, key]
                properties:
                  op: {type: string, enum: [put, delete]}
                  key: {$ref: "#/components/schemas/Key"}
                  value_base64: {type: [string, "null"], contentEncoding: base64}
                  content_type: {oneOf: [{$ref: "#/components/schemas/ContentType"}, {type: "null"}]}
                  if_version: {oneOf: [{$ref: "#/components/schemas/Version"}, {type: "null"}]}
                  if_absent: {type: [boolean, "null"]}
                  read: {oneOf: [{$ref: "#/components/schemas/Read"}, {type: "null"}]}
                  write: {oneOf: [{$ref: "#/components/schemas/Write"}, {type: "null"}]}
                allOf:
                  - if: {properties: {op: {const: put}}, required: [op]}
                    then: {required: [value_base64], properties: {value_base64: {type: string}}}
                    else: {not: {anyOf: [{properties: {value_base64: {type: string}}, required: [value_base64]}, {properties: {if_absent: {const: true}}, required: [if_absent]}]}}
                  - not: {properties: {if_absent: {const: true}, if_version: {type: integer}}, required: [if_version, if_absent]}
          allOf:
            - if: {properties: {release_lock: {const: true}}, required: [release_lock]}
              then: {required: [lock_token], properties: {lock_token: {$ref: "#/components/schemas/Token"}}}
              else: {properties: {operations: {minItems: 1}}}
        BatchResult:
          type: object
          required: [version, versions, previous_versions]
          properties:
            version: {type: [integer, "null"], description: "The batch's one version; null when nothing was written (only deletes of missing objects, or a bare release)."}
            versions: {type: object, additionalProperties: {type: integer}, description: "Every key written, with the batch's version."}
            previous_versions: {type: object, additionalProperties: {type: [integer, "null"]}, description: "Every key of the batch with its version before the batch; null when it did not exist."}
        Acquire: {type: object, required: [owner, ttl_ms], properties: {owner: {$ref: "#/components/schemas/Owner"}, ttl_ms: {$ref: "#/components/schemas/TTL"}, load: {type: [boolean, "null"], description: "Also return the partition's objects (lock and load)."}}}
        Changes:
          type: object
          required: [epoch, floor, next, reset, more, changes, lock]
          properties:
            epoch: {type: string, description: "The store's history; pass it back as epoch."}
            floor: {type: integer, description: "The oldest cursor answered exactly."}
            next: {type: integer, description: "The since of the next request."}
            reset: {type: boolean, description: "The answer starts from the whole state: drop what you hold."}
            more: {type: boolean, description: "More changes wait after next: ask again at once."}
            lock: {oneOf: [{type: "null"}, {type: object, required: [owner, expires_at_ms], properties: {owner: {type: string}, expires_at_ms: {type: integer}}}], description: "The game server's live session lock, if any."}
            changes:
              type: array
              items:
                type: object
                required: [key, version, deleted]
                properties: {key: {type: string}, version: {type: integer}, deleted: {type: boolean}, content_type: {type: string}, size: {type: integer}, value_base64: {type: string}, read: {$ref: "#/components/schemas/Read"}, write: {$ref: "#/components/schemas/Write"}}
                if: {properties: {deleted: {const: false}}}
                then: {required: [content_type, size, value_base64, read, write]}
                else: {not: {required: [value_base64]}}
        SyncRequest:
          type: object
          required: [client_id, mutations]
          properties:
            client_id: {$ref: "#/components/schemas/Owner"}
            mutations:
              type: array
              maxItems: 500
              items:
                type: object
                required: [id, key, op, base_version]
                properties:
                  id: {$ref: "#/components/schemas/Version"}
                  key: {type: string}
                  op: {type: string, enum: [put, delete]}
                  base_version: {$ref: "#/components/schemas/Version"}
                  value_base64: {type: [string, "null"], contentEncoding: base64}
                  content_type: {oneOf: [{$ref: "#/components/schemas/ContentType"}, {type: "null"}]}
                if: {properties: {op: {const: put}}, required: [op]}
                then: {required: [value_base64], properties: {value_base64: {type: string}}}
                else: {not: {properties: {value_base64: {type: string}}, required: [value_base64]}}
        SyncOutcome:
          type: object
          required: [status]
          properties:
            id: {type: integer}
            status: {type: string, enum: [applied, conflict, rejected, duplicate]}
            version: {type: integer, description: "applied: the push's version."}
            current: {type: object, required: [version, deleted], properties: {version: {type: integer}, deleted: {type: boolean}, content_type: {type: string}, value_base64: {type: string}, read: {$ref: "#/components/schemas/Read"}, write: {$ref: "#/components/schemas/Write"}}, description: "conflict: the object now (no value when the caller may not read it)."}
            error: {type: string, description: "rejected: an error code (bad_request, forbidden, too_large)."}
            message: {type: string}
            result: {oneOf: [{$ref: "#/components/schemas/SyncOutcome"}, {type: "null"}], description: "duplicate: the first result, or null when it is no longer kept."}
        SyncResult:
          type: object
          required: [last_mutation_id, results]
          properties:
            last_mutation_id: {type: integer}
            results: {type: array, items: {$ref: "#/components/schemas/SyncOutcome"}}
        Lock:
          type: object
          required: [token, owner, expires_at_ms]
          properties:
            token: {type: integer}
            owner: {type: string}
            expires_at_ms: {type: integer}
            objects:
              type: array
              description: "With load: every object of the partition."
              items:
                type: object
                required: [key, version, content_type, value_base64, read, write]
                properties: {key: {type: string}, version: {type: integer}, content_type: {type: string}, value_base64: {type: string}, read: {$ref: "#/components/schemas/Read"}, write: {$ref: "#/components/schemas/Write"}}

    """
}
