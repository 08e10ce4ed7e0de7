package dev.callbackstore

import java.io.File
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/** The analysis-script scenario from Kotlin: create from call analyses, list
 * by session, page through, dispatch with a Kotlin Dispatcher, API maps. */
class ScenarioTest {
    private val t0: Instant = Instant.parse("2030-03-04T17:00:00Z")

    private data class Analysis(
        val session: String,
        val agent: String,
        val phone: String,
        val inHours: List<Long>,
        val sentiment: Double,
    )

    private val analyses = listOf(
        Analysis("sess_001", "agent_sales", "+12015550101", listOf(17, 41), 0.8),
        Analysis("sess_002", "agent_support", "+442071838750", listOf(1), -0.2),
        Analysis("sess_003", "agent_sales", "+33142685300", emptyList(), 0.0),
    )

    private fun callbacksFrom(a: Analysis) = a.inHours.mapIndexed { i, h ->
        NewCallback(
            toNumber = a.phone,
            scheduledAt = t0.plus(Duration.ofHours(h)),
            sourceSessionId = a.session,
            agentId = a.agent,
            reason = "asked for a callback",
            metadata = mapOf("sentiment" to a.sentiment, "rank" to i, "tags" to listOf("analysis")),
            pipelineConfig = mapOf("voice" to "alloy"),
            idempotencyKey = "${a.session}#$i",
        )
    }

    /** A Kotlin dialer: the support line is down, one number is barred. */
    private class Dialer : Dispatcher {
        val placed = mutableListOf<String>()

        override fun placeCall(callback: ScheduledCallback): String {
            synchronized(placed) { placed.add(callback.id) }
            if (callback.agentId == "agent_support") throw IllegalStateException("SIP trunk unreachable")
            if (callback.toNumber == "+15550000000") throw DispatchException.Failed("number is on the do-not-call list")
            return "sess_call_${callback.id.takeLast(6)}"
        }
    }

    @Test
    fun analysisScriptEndToEnd() {
        val dir = Files.createTempDirectory("callback-store-kt").toFile()
        val clock = ManualClock(t0)
        Store.open(File(dir, "callbacks.db").path, StoreOptions(clock = clock, durability = Durability.NORMAL)).use { store ->
            store.organization("org_acme").use { acme ->
                val created = analyses.flatMap { acme.createMany(callbacksFrom(it)) }
                assertEquals(3, created.size)
                assertEquals(created.take(2).map { it.id }, acme.createMany(callbacksFrom(analyses[0])).map { it.id })
                val barred = acme.create(NewCallback(toNumber = "+15550000000", scheduledAt = t0, sourceSessionId = "sess_004"))
                assertEquals(emptyMap(), barred.metadata)

                val first = created[0]
                assertEquals(Status.SCHEDULED, first.status)
                assertEquals(Instant.parse("2030-03-05T10:00:00Z"), first.scheduledAt)
                assertEquals(mapOf("sentiment" to 0.8, "rank" to 0L, "tags" to listOf("analysis")), first.metadata)
                assertEquals(t0, first.createdAt)

                val bySession = acme.list(ListQuery(sourceSessionId = "sess_001"))
                assertEquals(created.take(2).map { it.id }.toSet(), bySession.callbacks.map { it.id }.toSet())
                assertNull(bySession.nextCursor)

                val seen = mutableListOf<String>()
                var cursor: String? = null
                do {
                    val page = acme.list(ListQuery(limit = 1u, order = Order.SCHEDULED_ASC, cursor = cursor))
                    seen += page.callbacks.map { it.id }
                    cursor = page.nextCursor
                } while (cursor != null)
                assertEquals(4, seen.size)
                assertEquals(4, seen.toSet().size)
                assertEquals(barred.id, seen[0])

                val dialer = Dialer()
                val report = store.dispatchDue(dialer, t0.plus(Duration.ofHours(1)), 10u)
                assertEquals(2, dialer.placed.size)
                assertEquals(emptyList(), report.dispatched)
                assertEquals(
                    mapOf(
                        "+442071838750" to "SIP trunk unreachable", // the exception's message
                        "+15550000000" to "number is on the do-not-call list",
                    ),
                    report.failed.associate { it.toNumber to it.failureCause },
                )

                val next = store.dispatchDue(dialer, t0.plus(Duration.ofHours(17)), 10u)
                assertEquals(listOf(first.id), next.dispatched.map { it.id })
                assertEquals(Status.DISPATCHED, acme.get(first.id).status)
                // dispatchDue places through a claim: the spend is its own event.
                assertEquals(
                    listOf(EventAction.CREATE, EventAction.CLAIM_DUE, EventAction.PLACE_CALL, EventAction.COMPLETE_DISPATCH),
                    acme.history(first.id).map { it.action },
                )

                val rows = acme.list(ListQuery(limit = 100u)).callbacks.map { it.toApiMap() }
                assertEquals(4, rows.size)
                val row = rows.first { it["id"] == first.id }
                assertEquals("dispatched", row["status"])
                assertEquals("2030-03-05T10:00:00Z", row["scheduled_at"])
                // The reference's 21 keys, then the 4 extension keys.
                assertEquals(25, row.size)
                assertEquals(listOf("timezone", "expires_at", "attempt", "previous_callback_id"), row.keys.toList().takeLast(4))
                val json = Json.parse(acme.get(first.id).toApiJson()) as Map<*, *>
                assertEquals(row.keys.toList(), json.keys.toList())
                val counts = acme.countByStatus().associate { it.status to it.count }
                assertEquals(2uL, counts[Status.FAILED])
            }
        }
        dir.deleteRecursively()
    }

    @Test
    fun useAndCloseSemantics() {
        val store = Store.openInMemory()
        val org = store.organization("org_a")
        store.use { assertNotNull(it.now()) }
        // A closed handle refuses further calls, without crashing.
        assertFailsWith<IllegalStateException> { store.now() }
        store.close() // closing twice is harmless
        // An organization taken before keeps the database open.
        val cb = org.create(NewCallback(toNumber = "+12015551234", scheduledAt = t0))
        assertEquals(cb, org.get(cb.id))
        org.close()
        assertFailsWith<IllegalStateException> { org.get(cb.id) }

        val clock = ManualClock(t0)
        clock.use { it.advance(Duration.ofMinutes(5)) }
        assertFailsWith<IllegalStateException> { clock.now() }
    }

    @Test
    fun everyErrorCodeIsItsOwnExceptionWithTheCode() {
        Store.openInMemory(StoreOptions(clock = ManualClock(t0))).use { store ->
            val org = store.organization("org_a")
            fun <T : CallbackStoreException> check(code: String, e: T) {
                assertEquals(code, e.code)
                assertTrue(e.reason.isNotEmpty())
                assertTrue(e.message!!.contains(code))
            }
            check("UNAUTHORIZED", assertFailsWith<CallbackStoreException.Unauthorized> { store.authenticate("Bearer nope") })
            check("NOT_FOUND", assertFailsWith<CallbackStoreException.NotFound> { org.get("cb_missing") })
            val cb = org.create(NewCallback(toNumber = "+12015551234", scheduledAt = t0, idempotencyKey = "k"))
            org.dispatch(cb.id).close()
            check("INVALID_TRANSITION", assertFailsWith<CallbackStoreException.InvalidTransition> { org.cancel(cb.id) })
            check("CONFLICT", assertFailsWith<CallbackStoreException.Conflict> {
                org.create(NewCallback(toNumber = "+12015559999", scheduledAt = t0, idempotencyKey = "k"))
            })
            val bad = listOf(
                NewCallback(toNumber = "12015551234", scheduledAt = t0),
                NewCallback(toNumber = "+12015551234", scheduledAt = Instant.parse("1969-12-31T23:59:59Z")),
                NewCallback(toNumber = "+12015551234", scheduledAt = Instant.MAX),
                NewCallback(toNumber = "+12015551234", scheduledAt = t0, metadata = mapOf("x" to Any())),
                NewCallback(toNumber = "+12015551234", scheduledAt = t0, metadata = mapOf("x" to Double.NaN)),
            )
            for (input in bad) {
                check("VALIDATION_ERROR", assertFailsWith<CallbackStoreException.ValidationException> { org.create(input) })
            }
            check("VALIDATION_ERROR", assertFailsWith<CallbackStoreException.ValidationException> { org.list(ListQuery(limit = 0u)) })
            check("VALIDATION_ERROR", assertFailsWith<CallbackStoreException.ValidationException> {
                ManualClock(t0).advance(Duration.ofDays(5_000_000))
            })
            val dir = Files.createTempDirectory("callback-store-kt").toFile()
            val foreign = File(dir, "notes.db").apply { writeText("not a database ".repeat(100)) }
            check("SCHEMA_ERROR", assertFailsWith<CallbackStoreException.SchemaException> { Store.open(foreign.path) })
            check("STORAGE_ERROR", assertFailsWith<CallbackStoreException.StorageException> {
                Store.open(File(dir, "no/such/dir.db").path)
            })
            dir.deleteRecursively()
        }
    }

    @Test
    fun threadsShareOneStoreAndEachCallbackIsPlacedOnce() {
        Store.openInMemory().use { store ->
            val pool = Executors.newFixedThreadPool(4)
            val futures = (0 until 4).map { n ->
                pool.submit<List<String>> {
                    store.organization("org_$n").use { org ->
                        (0 until 50).map { org.create(NewCallback(toNumber = "+12015551234", scheduledAt = t0)).id }
                    }
                }
            }
            val created = futures.flatMap { it.get() }
            val dialer = Dialer()
            val workers = (0 until 4).map {
                pool.submit<Int> {
                    var done = 0
                    while (true) {
                        val r = store.dispatchDue(dialer, t0, 7u)
                        if (r.dispatched.isEmpty() && r.failed.isEmpty()) break
                        done += r.dispatched.size
                    }
                    done
                }
            }
            assertEquals(created.size, workers.sumOf { it.get() })
            pool.shutdown()
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS))
            assertEquals(created.toSet(), dialer.placed.toSet())
            assertEquals(created.size, dialer.placed.size)
        }
    }

    @Test
    fun timestampsAndJsonKeepTheirShape() {
        assertEquals("2030-01-01T00:00:00Z", ApiJson.timestamp(Instant.parse("2030-01-01T00:00:00Z")))
        assertEquals("2030-01-01T00:00:00.250Z", ApiJson.timestamp(Instant.parse("2030-01-01T00:00:00.25Z")))
        assertEquals("2030-01-01T00:00:00.123400Z", ApiJson.timestamp(Instant.parse("2030-01-01T00:00:00.1234Z")))
        val text = """{"a":[1,2.5,true,null,"x\"y\u00e9"],"b":{"c":-3}}"""
        assertEquals(text.replace("\\u00e9", "é"), Json.encode(Json.parse(text)))
        assertEquals(25u, defaultLimit())
        assertEquals("dispatch_interrupted", dispatchInterrupted())
        assertEquals(Instant.parse("1970-01-01T00:00:00Z"), minTimestamp())
    }
}
