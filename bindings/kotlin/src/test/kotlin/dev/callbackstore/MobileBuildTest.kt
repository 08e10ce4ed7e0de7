package dev.callbackstore

import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/** The Kotlin and Swift library is built without the PostgreSQL backend (a
 * phone links no network client and no tokio; scripts/test-bindings.sh checks
 * the dependency tree and the library's symbols). Its StoreOptions still has
 * maxConnections, which only PostgreSQL reads. */
class MobileBuildTest {
    @Test
    fun aPostgresUrlIsAValidationErrorWithoutTheBackend() {
        // Nobody listens on port 1: a library with the backend would try to
        // connect and fail with STORAGE_ERROR instead.
        for (url in listOf("postgres://postgres@127.0.0.1:1/postgres", "postgresql://127.0.0.1:1/callbacks")) {
            val e = assertFailsWith<CallbackStoreException.ValidationException> {
                Store.open(url, StoreOptions(maxConnections = 4u)).close()
            }
            assertEquals("VALIDATION_ERROR", e.code)
            assertTrue(e.reason.contains("has no PostgreSQL backend"), e.reason)
        }
    }

    @Test
    fun maxConnectionsDefaultsToTheStoresOwnDefault() {
        assertNull(StoreOptions().maxConnections)
        // SQLite ignores it: the store opens with any value.
        Store.openInMemory(StoreOptions(maxConnections = 1u)).use { store ->
            store.organization("org_a").use { assertEquals(emptyList(), it.countByStatus().filter { c -> c.count > 0uL }) }
        }
    }
}
