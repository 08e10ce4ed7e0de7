package dev.callbackstore

import java.io.File
import java.nio.file.Files
import java.time.Duration
import java.time.Instant
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CyclicBarrier
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue
import org.junit.After
import org.junit.Test

/** Fenced claims from Kotlin (issue 10): a call is placed at most once per
 * claim, whatever the caller passes to `Store.placeCall`. */
class ClaimsTest {
    private val t0: Instant = Instant.parse("2030-03-04T17:00:00Z")
    private val dir: File = Files.createTempDirectory("callback-store-claims").toFile()

    @After
    fun removeTheFiles() {
        dir.deleteRecursively()
    }

    /** A Kotlin dialer that records every call it receives. */
    private class CountingDialer : Dispatcher {
        val calls = AtomicInteger()
        val dialed = ConcurrentLinkedQueue<String>()

        override fun placeCall(callback: ScheduledCallback): String {
            calls.incrementAndGet()
            dialed.add(callback.id)
            return "sess_${callback.id.takeLast(8)}"
        }
    }

    private fun newCallback() = NewCallback(toNumber = "+12015551234", scheduledAt = t0.plus(Duration.ofDays(1)))

    /** Runs `body` on a store with a manual clock at t0 and organization org_a. */
    private fun withOrg(body: (Store, Organization, ManualClock) -> Unit) {
        val clock = ManualClock(t0)
        Store.openInMemory(StoreOptions(clock = clock)).use { store ->
            store.organization("org_a").use { org -> body(store, org, clock) }
        }
    }

    /** The call fails with INVALID_TRANSITION, as its code says. */
    private fun assertInvalidTransition(call: () -> Unit) {
        val e = assertFailsWith<CallbackStoreException.InvalidTransition> { call() }
        assertEquals("INVALID_TRANSITION", e.code)
    }

    @Test
    fun theSameClaimPlacedTwiceDialsOnceAndTheSecondIsRefused() = withOrg { store, org, _ ->
        val claim = org.dispatch(org.create(newCallback()).id)
        val dialer = CountingDialer()
        val placed = store.placeCall(dialer, claim)
        assertEquals(Status.DISPATCHED, placed.status)
        val history = org.history(claim.id())

        assertInvalidTransition { store.placeCall(dialer, claim) }
        assertEquals(1, dialer.calls.get())
        assertEquals(placed, org.get(claim.id()))
        assertEquals(history, org.history(claim.id()))
    }

    @Test
    fun aClaimAfterRecoverStaleIsRefused() = withOrg { store, org, clock ->
        val claim = org.dispatch(org.create(newCallback()).id)
        clock.advance(Duration.ofHours(1))
        val recovered = store.recoverStale(clock.now(), Duration.ofMinutes(10))
        assertEquals(listOf(claim.id()), recovered.map { it.id })
        assertEquals(Status.FAILED, recovered[0].status)

        val dialer = CountingDialer()
        assertInvalidTransition { store.placeCall(dialer, claim) }
        assertInvalidTransition { org.completeDispatch(claim.id(), "sess_late", claimToken = claim.token()) }
        assertInvalidTransition { store.claimByToken(claim.id(), claim.token()) }
        assertEquals(0, dialer.calls.get())
        assertEquals(recovered[0], org.get(claim.id()))
    }

    @Test
    fun aClaimWhoseCallbackWasFinishedWithoutItIsRefused() = withOrg { store, org, _ ->
        // complete/fail without a token still work; the claim is stale after.
        val completed = org.dispatch(org.create(newCallback()).id)
        val failed = org.dispatch(org.create(newCallback()).id)
        val rows = listOf(
            org.completeDispatch(completed.id(), "sess_elsewhere"),
            org.failDispatch(failed.id(), "busy"),
        )
        assertEquals(listOf(Status.DISPATCHED, Status.FAILED), rows.map { it.status })

        val dialer = CountingDialer()
        for ((claim, row) in listOf(completed, failed).zip(rows)) {
            assertInvalidTransition { store.placeCall(dialer, claim) }
            assertEquals(row, org.get(claim.id()))
        }
        assertEquals(0, dialer.calls.get())
    }

    @Test
    fun aForgedTokenIsRefusedByClaimByTokenCompleteAndFail() = withOrg { store, org, _ ->
        val claim = org.dispatch(org.create(newCallback()).id)
        val row = org.get(claim.id())
        // Well-formed but not the stored token: all zeros, and the real one
        // with its last digit changed.
        val last = claim.token().last()
        val forgeries = listOf("0".repeat(32), claim.token().dropLast(1) + (if (last == '0') '1' else '0'))
        for (forged in forgeries) {
            assertInvalidTransition { store.claimByToken(claim.id(), forged) }
            assertInvalidTransition { org.completeDispatch(claim.id(), "sess_1", claimToken = forged) }
            assertInvalidTransition { org.failDispatch(claim.id(), "busy", claimToken = forged) }
        }
        assertEquals(row, org.get(claim.id()))
        assertEquals(Status.DISPATCHING, row.status)

        // The real claim was not disturbed: it still places, once.
        val dialer = CountingDialer()
        assertEquals(Status.DISPATCHED, store.placeCall(dialer, claim).status)
        assertEquals(1, dialer.calls.get())
    }

    @Test
    fun aClaimHandedOverAsIdAndTokenIsTheSameSingleUseClaim() {
        val path = File(dir, "handover.db").path
        Store.open(path).use { a ->
            Store.open(path).use { b ->
                val claim = a.organization("org_a").use { it.dispatch(it.create(newCallback()).id) }
                val handedOver = b.claimByToken(claim.id(), claim.token())
                assertEquals(claim.token(), handedOver.token())
                assertEquals(claim.callback(), handedOver.callback())

                val dialer = CountingDialer()
                assertEquals(Status.DISPATCHED, b.placeCall(dialer, handedOver).status)
                assertInvalidTransition { a.placeCall(dialer, claim) }
                assertEquals(listOf(claim.id()), dialer.dialed.toList())
            }
        }
    }

    /**
     * ROUNDS rounds: one claim, 8 threads place it at once (released by a
     * barrier), each through `storeFor(thread)` and the claim that
     * `claimFor(thread)` gives it. Exactly one placement wins; the other 7
     * are INVALID_TRANSITION; the dialer ran once and the history has one
     * spend. Returns the elapsed milliseconds.
     */
    private fun raceRounds(
        origin: Store,
        storeFor: (Int) -> Store,
        claimFor: (Int, Claim) -> Claim,
    ): Long {
        val started = System.nanoTime()
        val pool: ExecutorService = Executors.newFixedThreadPool(THREADS)
        try {
            origin.organization("org_race").use { org ->
                repeat(ROUNDS) { round ->
                    val claim = org.dispatch(org.create(newCallback()).id)
                    val dialer = CountingDialer()
                    val barrier = CyclicBarrier(THREADS)
                    val outcomes = (0 until THREADS).map { n ->
                        pool.submit<String> {
                            val mine = claimFor(n, claim)
                            barrier.await(10, TimeUnit.SECONDS)
                            try {
                                storeFor(n).placeCall(dialer, mine).status.name
                            } catch (e: CallbackStoreException.InvalidTransition) {
                                e.code
                            } finally {
                                // A shared claim is closed once, after every thread is done.
                                if (mine !== claim) mine.close()
                            }
                        }
                    }.map { it.get(30, TimeUnit.SECONDS) }
                    val where = "round $round: $outcomes"
                    assertEquals(1, outcomes.count { it == "DISPATCHED" }, where)
                    assertEquals(THREADS - 1, outcomes.count { it == "INVALID_TRANSITION" }, where)
                    assertEquals(1, dialer.calls.get(), where)
                    assertEquals(1, org.history(claim.id()).count { it.action == EventAction.PLACE_CALL }, where)
                    claim.close()
                }
            }
        } finally {
            pool.shutdown()
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS))
        }
        return (System.nanoTime() - started) / 1_000_000
    }

    @Test
    fun oneClaimPlacedFrom8ThreadsEachWithItsOwnStoreDialsOnce() {
        val path = File(dir, "race.db").path
        val options = StoreOptions(durability = Durability.NORMAL)
        val stores = (0 until THREADS).map { Store.open(path, options) }
        try {
            // Each thread takes the claim back by id and token in its own
            // store, as another process would, before the barrier.
            val ms = raceRounds(stores[0], { stores[it] }, { n, c -> stores[n].claimByToken(c.id(), c.token()) })
            println("ClaimsTest: $ROUNDS rounds x $THREADS threads, one store each: $ms ms")
        } finally {
            stores.forEach(Store::close)
        }
    }

    @Test
    fun oneClaimPlacedFrom8ThreadsSharingOneStoreDialsOnce() {
        Store.open(File(dir, "shared.db").path, StoreOptions(durability = Durability.NORMAL)).use { store ->
            // The very same Claim object, passed by all 8 threads.
            val ms = raceRounds(store, { store }, { _, c -> c })
            println("ClaimsTest: $ROUNDS rounds x $THREADS threads, one shared store: $ms ms")
        }
    }

    @Test
    fun aClaimBuiltWithoutAHandleIsRefusedBeforeAnyDial() = withOrg { store, org, _ ->
        // uniffi's public test constructor: no Rust object behind it. Kotlin
        // refuses to pass it (InternalException) before Rust is called.
        val real = org.dispatch(org.create(newCallback()).id)
        val fake = Claim(NoHandle)
        val dialer = CountingDialer()
        assertFailsWith<InternalException> { store.placeCall(dialer, fake) }
        assertFailsWith<InternalException> { fake.token() }
        assertEquals(0, dialer.calls.get())
        assertEquals(Status.DISPATCHING, org.get(real.id()).status)
        assertEquals(Status.DISPATCHED, store.placeCall(dialer, real).status)
    }

    @Test
    fun aClaimSubclassCannotChangeWhatIsPlaced() = withOrg { store, org, _ ->
        // Claim is an open class: a subclass may lie in token() and
        // callback(), but placeCall passes the Rust object behind the
        // handle, whose token and callback are the store's.
        val real = org.dispatch(org.create(newCallback()).id)
        val other = org.create(newCallback())
        val liar = object : Claim(UniffiWithHandle, real.uniffiCloneHandle()) {
            override fun token() = "0".repeat(32)
            override fun callback() = other
            override fun id() = other.id
        }
        val dialer = CountingDialer()
        assertEquals(real.id(), store.placeCall(dialer, liar).id)
        assertEquals(listOf(real.id()), dialer.dialed.toList())
        assertEquals(Status.SCHEDULED, org.get(other.id).status)
        assertInvalidTransition { store.placeCall(dialer, real) }
        liar.close()
    }

    @Test
    fun claimHasOnlyUniffisHandleConstructors() {
        // What the README promises a caller: no constructor from a callback
        // or a token; only uniffi's handle and NoHandle ones (tested above).
        val constructors = Claim::class.java.constructors.map { c -> c.parameterTypes.map { it.simpleName } }.toSet()
        assertEquals(setOf(listOf("UniffiWithHandle", "long"), listOf("NoHandle")), constructors)
    }

    private companion object {
        const val THREADS = 8
        const val ROUNDS = 200
    }
}
