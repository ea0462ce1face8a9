/// The OpenAPI 3.1 document of HTTP API v1, served at `GET /v1/openapi.yaml`. Kept here (not as a
/// resource file) so the single `jelly` binary carries it. (A test that checks real responses
/// against it is still to be written: see docs/http-api.md.)
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
        answers carry them.
    security:
      - bearer: []
      - {}
    paths:
      /v1/health:
        get:
          responses:
            "200": {description: The server is up., content: {application/json: {schema: {$ref: "#/components/schemas/Health"}}}}
      /v1/partitions/{partition}/objects/{key}:
        parameters:
          - {$ref: "#/components/parameters/partition"}
          - {$ref: "#/components/parameters/key"}
        put:
          parameters:
            - {$ref: "#/components/parameters/lockToken"}
            - {name: If-Match, in: header, schema: {type: string}, description: 'Quoted version, "V": write only if the object is at V.'}
            - {name: If-None-Match, in: header, schema: {type: string, const: "*"}, description: Write only if the object does not exist.}
          requestBody: {required: true, content: {"*/*": {schema: {type: string, format: binary}}}}
          responses:
            "200": {description: Replaced., headers: {ETag: {schema: {type: string}}}, content: {application/json: {schema: {$ref: "#/components/schemas/Version"}}}}
            "201": {description: Created., headers: {ETag: {schema: {type: string}}}, content: {application/json: {schema: {$ref: "#/components/schemas/Version"}}}}
            "400": {$ref: "#/components/responses/Error"}
            "412": {$ref: "#/components/responses/Error"}
            "413": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
        get:
          parameters:
            - {name: If-None-Match, in: header, schema: {type: string}}
          responses:
            "200": {description: The value, with its stored Content-Type., headers: {ETag: {schema: {type: string}}}, content: {"*/*": {schema: {type: string, format: binary}}}}
            "304": {description: Not modified.}
            "400": {$ref: "#/components/responses/Error"}
            "404": {$ref: "#/components/responses/Error"}
        delete:
          parameters:
            - {$ref: "#/components/parameters/lockToken"}
            - {name: If-Match, in: header, schema: {type: string}}
          responses:
            "204": {description: Deleted.}
            "400": {$ref: "#/components/responses/Error"}
            "404": {$ref: "#/components/responses/Error"}
            "412": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/objects:
        parameters: [{$ref: "#/components/parameters/partition"}]
        get:
          parameters:
            - {name: after, in: query, schema: {type: string}}
            - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 100}}
          responses:
            "200": {description: A page in ascending byte order of key., content: {application/json: {schema: {$ref: "#/components/schemas/Listing"}}}}
            "400": {$ref: "#/components/responses/Error"}
      /v1/partitions/{partition}/batch:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/Batch"}}}}
          responses:
            "200": {description: Committed as one version., content: {application/json: {schema: {$ref: "#/components/schemas/BatchResult"}}}}
            "400": {$ref: "#/components/responses/Error"}
            "412": {$ref: "#/components/responses/Error"}
            "413": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {$ref: "#/components/schemas/Acquire"}}}}
          responses:
            "200": {description: Acquired (or extended for the same owner)., content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
        get:
          responses:
            "200": {description: The live lock., content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "404": {$ref: "#/components/responses/Error"}
        delete:
          parameters: [{$ref: "#/components/parameters/lockToken"}]
          responses:
            "204": {description: Released.}
            "400": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock/renew:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {type: object, required: [token, ttl_ms], properties: {token: {type: integer}, ttl_ms: {type: integer}}}}}}
          responses:
            "200": {description: Renewed., content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock/transfer:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          requestBody: {required: true, content: {application/json: {schema: {type: object, required: [token, to_owner, ttl_ms], properties: {token: {type: integer}, to_owner: {type: string}, ttl_ms: {type: integer}}}}}}
          responses:
            "200": {description: Transferred with a new token., content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "400": {$ref: "#/components/responses/Error"}
            "423": {$ref: "#/components/responses/Locked"}
      /v1/partitions/{partition}/lock/break:
        parameters: [{$ref: "#/components/parameters/partition"}]
        post:
          description: Administrative (admin API key); removes the lock whoever holds it.
          responses:
            "200": {description: The lock that was removed., content: {application/json: {schema: {$ref: "#/components/schemas/Lock"}}}}
            "401": {$ref: "#/components/responses/Error"}
            "403": {$ref: "#/components/responses/Error"}
            "404": {$ref: "#/components/responses/Error"}
      /metrics:
        get:
          description: Prometheus text exposition (API keys only when auth is configured).
          responses:
            "200": {description: Metrics., content: {text/plain: {schema: {type: string}}}}
            "401": {$ref: "#/components/responses/Error"}
            "403": {$ref: "#/components/responses/Error"}
    components:
      securitySchemes:
        bearer: {type: http, scheme: bearer, description: An API key from the config file, or a client JWT whose sub is a partition.}
      parameters:
        partition: {name: partition, in: path, required: true, schema: {type: string, minLength: 1}}
        key: {name: key, in: path, required: true, schema: {type: string, minLength: 1}}
        lockToken: {name: Jelly-Lock-Token, in: header, schema: {type: string, pattern: "^[0-9]+$"}}
      responses:
        Error: {description: An error., content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        Locked: {description: The lock is held by another owner or the token is stale., content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
      schemas:
        Health: {type: object, required: [status], properties: {status: {type: string, const: ok}}}
        Error:
          type: object
          required: [error, message]
          properties:
            error: {type: string, enum: [bad_request, not_found, locked, precondition_failed, too_large, unauthorized, forbidden, unavailable, internal]}
            message: {type: string}
            owner: {type: string}
            expires_at_ms: {type: integer}
        Version: {type: object, required: [version], properties: {version: {type: integer}}}
        Listing:
          type: object
          required: [objects, next]
          properties:
            objects:
              type: array
              items: {type: object, required: [key, version, size, content_type], properties: {key: {type: string}, version: {type: integer}, size: {type: integer}, content_type: {type: string}}}
            next: {type: [string, "null"]}
        Batch:
          type: object
          required: [operations]
          properties:
            lock_token: {type: [integer, "null"]}
            release_lock: {type: boolean}
            operations:
              type: array
              items:
                type: object
                required: [op, key]
                properties:
                  op: {type: string, enum: [put, delete]}
                  key: {type: string}
                  value_base64: {type: string}
                  content_type: {type: string}
                  if_version: {type: integer}
                  if_absent: {type: boolean}
        BatchResult:
          type: object
          required: [version, versions]
          properties:
            version: {type: [integer, "null"]}
            versions: {type: object, additionalProperties: {type: integer}}
        Acquire: {type: object, required: [owner, ttl_ms], properties: {owner: {type: string}, ttl_ms: {type: integer}, load: {type: boolean}}}
        Lock:
          type: object
          required: [token, owner, expires_at_ms]
          properties:
            token: {type: integer}
            owner: {type: string}
            expires_at_ms: {type: integer}
            objects:
              type: array
              items: {type: object, required: [key, version, content_type, value_base64], properties: {key: {type: string}, version: {type: integer}, content_type: {type: string}, value_base64: {type: string}}}

    """
}
