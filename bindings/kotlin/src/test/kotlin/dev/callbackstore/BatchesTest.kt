package dev.callbackstore

import java.time.Duration
import java.time.Instant
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.atomic.AtomicInteger
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/** Batched calls from Kotlin (issue 14): `completeMany` completes many
 * claims in one call, each item refused on its own; `createManyReturningIds`
 * answers ids; `dispatchDueWith` places calls on several threads, each once. */
class BatchesTest {
    private val t0: Instant = Instant.parse("2030-03-04T17:00:00Z")
    private val now: Instant = t0.plus(Duration.ofDays(2))

    private fun newCallback(minutes: Long = 0) =
        NewCallback(toNumber = "+12015551234", scheduledAt = t0.plus(Duration.ofDays(1).plusMinutes(minutes)))

    private fun withOrg(body: (Store, Organization) -> Unit) {
        Store.openInMemory(StoreOptions(clock = ManualClock(t0))).use { store ->
            store.organization("org_a").use { org -> body(store, org) }
        }
    }

    /** `n` callbacks created (oldest first) and claimed; their claims. */
    private fun claimAll(store: Store, org: Organization, n: Int): List<Claim> {
        val ids = org.createManyReturningIds((0 until n).map { newCallback(it.toLong()) })
        val claims = store.claimDue(now, 100u)
        assertEquals(ids, claims.map { it.id() })
        return claims
    }

    @Test
    fun aBatchCompletesEveryClaimInOneCall() = withOrg { store, org ->
        val claims = claimAll(store, org, 4)
        val outcomes = store.completeMany(claims.mapIndexed { i, c -> Completion(c, "sess_$i") })
        assertEquals(claims.map { CompletionOutcome(it.id(), null) }, outcomes)
        claims.forEachIndexed { i, c ->
            val row = org.get(c.id())
            assertEquals(Status.DISPATCHED, row.status)
            assertEquals("sess_$i", row.createdSessionId)
        }
    }

    @Test
    fun aRefusedItemFailsAloneAndTheOthersComplete() = withOrg { store, org ->
        val (ok, stale, badSession) = claimAll(store, org, 3)
        org.failDispatch(stale.id(), "hung up") // without the token: the claim is stale now
        val staleRow = org.get(stale.id())
        val outcomes = store.completeMany(
            listOf(Completion(ok, "sess_ok"), Completion(stale, "sess_late"), Completion(badSession, "")),
        )
        assertEquals(listOf(ok.id(), stale.id(), badSession.id()), outcomes.map { it.id })
        assertNull(outcomes[0].error)
        val staleError = assertNotNull(outcomes[1].error)
        assertEquals("INVALID_TRANSITION", staleError.code)
        assertTrue("stale claim" in staleError.reason, staleError.reason)
        val sessionError = assertNotNull(outcomes[2].error)
        assertEquals("VALIDATION_ERROR", sessionError.code)
        assertTrue(sessionError.reason.startsWith("completions[2].created_session_id:"), sessionError.reason)

        assertEquals(Status.DISPATCHED, org.get(ok.id()).status)
        assertEquals(staleRow, org.get(stale.id()))
        assertEquals(Status.DISPATCHING, org.get(badSession.id()).status)
    }

    /** Records the calls, the threads they came from, and the most at once. */
    private class ThreadedDialer(private val millis: Long, private val refuse: String = "") : Dispatcher {
        val calls = ConcurrentLinkedQueue<String>()
        val threads: MutableSet<Long> = ConcurrentHashMap.newKeySet()
        private val underWay = AtomicInteger()
        val mostAtOnce = AtomicInteger()

        override fun placeCall(callback: ScheduledCallback): String {
            calls.add(callback.id)
            threads.add(Thread.currentThread().id)
            mostAtOnce.accumulateAndGet(underWay.incrementAndGet(), ::maxOf)
            try {
                Thread.sleep(millis)
                check(callback.id != refuse) { "line busy" }
                return "sess_${callback.id.takeLast(6)}"
            } finally {
                underWay.decrementAndGet()
            }
        }
    }

    @Test
    fun dispatchDueWithPlacesEachCallOnceFromSeveralThreads() = withOrg { store, org ->
        val ids = org.createManyReturningIds((0 until 12).map { newCallback(it.toLong()) })
        val dialer = ThreadedDialer(millis = 50, refuse = ids[5])
        val report = store.dispatchDueWith(dialer, now, 100u, DispatchOptions(concurrency = 4u))
        assertEquals(ids.sorted(), dialer.calls.sorted()) // each once
        assertEquals(ids.filter { it != ids[5] }, report.dispatched.map { it.id }) // claim order
        assertEquals(listOf(ids[5] to "line busy"), report.failed.map { it.id to it.failureCause })
        assertTrue(Thread.currentThread().id !in dialer.threads)
        assertTrue(dialer.threads.size >= 2 && dialer.mostAtOnce.get() in 2..4, "${dialer.threads} ${dialer.mostAtOnce}")
        val nothing = store.dispatchDueWith(dialer, now, 100u, DispatchOptions(concurrency = 4u))
        assertEquals(emptyList(), nothing.dispatched + nothing.failed)
        assertEquals(12, dialer.calls.size)
    }

    @Test
    fun aConcurrencyOutside1To256IsAValidationErrorAndClaimsNothing() = withOrg { store, org ->
        val id = org.create(newCallback()).id
        val dialer = ThreadedDialer(millis = 0)
        assertEquals(256u, maxConcurrency())
        assertEquals(1u, DispatchOptions().concurrency)
        for (concurrency in listOf(0u, 257u)) {
            val e = assertFailsWith<CallbackStoreException.ValidationException> {
                store.dispatchDueWith(dialer, now, 100u, DispatchOptions(concurrency))
            }
            assertEquals("VALIDATION_ERROR", e.code)
            assertEquals("concurrency: must be between 1 and 256, got $concurrency", e.reason)
        }
        assertEquals(Status.SCHEDULED, org.get(id).status)
        assertTrue(dialer.calls.isEmpty())
    }
}
