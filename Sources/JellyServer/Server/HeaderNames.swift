import HTTPTypes

/// The API's own header names (docs/http-api.md).
let jellyLockToken = fieldName("Jelly-Lock-Token")
let jellyRead = fieldName("Jelly-Read")
let jellyWrite = fieldName("Jelly-Write")
let jellyPreviousVersion = fieldName("Jelly-Previous-Version")

private func fieldName(_ name: String) -> HTTPField.Name {
    guard let field = HTTPField.Name(name) else { preconditionFailure("\(name) is not a valid header name") }
    return field
}
let jellyBaseVersion = fieldName("Jelly-Base-Version")
