package dev.callbackstore

/** The stable code of any store error (`"NOT_FOUND"`, ...): every variant
 * carries it; this reads it from the sealed base class. */
val CallbackStoreException.code: String
    get() = when (this) {
        is CallbackStoreException.Unauthorized -> code
        is CallbackStoreException.NotFound -> code
        is CallbackStoreException.InvalidTransition -> code
        is CallbackStoreException.Conflict -> code
        is CallbackStoreException.ValidationException -> code
        is CallbackStoreException.StorageException -> code
        is CallbackStoreException.SchemaException -> code
    }

/** The human message of any store error (the API body's `error`). */
val CallbackStoreException.reason: String
    get() = when (this) {
        is CallbackStoreException.Unauthorized -> reason
        is CallbackStoreException.NotFound -> reason
        is CallbackStoreException.InvalidTransition -> reason
        is CallbackStoreException.Conflict -> reason
        is CallbackStoreException.ValidationException -> reason
        is CallbackStoreException.StorageException -> reason
        is CallbackStoreException.SchemaException -> reason
    }
