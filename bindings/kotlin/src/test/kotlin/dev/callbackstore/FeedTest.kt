package dev.callbackstore

import java.time.Duration
import java.time.Instant
import java.util.concurrent.CountDownLatch
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.concurrent.thread
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Test

/** The change feed from Kotlin (issue 15): `Organization.changes`, the
 * `ChangeObserver` of `Organization.watch`, and `changesFlow`, a Flow that
 * cancels its watch when its collector goes. */
class FeedTest {
    private val t0: Instant = Instant.parse("2030-03-04T17:00:00Z")

    private fun newCallback() = NewCallback(toNumber = "+12015551234", scheduledAt = t0.plus(Duration.ofDays(1)))

    private fun withOrg(body: (Store, Organization) -> Unit) {
        Store.openInMemory(StoreOptions(clock = ManualClock(t0))).use { store ->
            store.organization("org_a").use { org -> body(store, org) }
        }
    }

    /** Where a reader that starts now reads from: a cursor, so that what
     * commits after this line is seen however late the reader starts. */
    private fun cursorNow(org: Organization): Since =
        Since.Cursor(org.changes(Since.Now, 1u, Duration.ZERO).nextCursor)

    @Test
    fun aCallbackCancelledOnAnotherThreadArrivesInTheFlow() = withOrg { _, org ->
        val callback = org.create(newCallback())
        val from = cursorNow(org)
        val canceller = thread {
            Thread.sleep(300) // the collector is waiting in a long poll by then
            org.cancel(callback.id, "customer called in")
        }
        val change = runBlocking { withTimeout(10_000) { org.changesFlow(from).first() } }
        canceller.join()
        assertEquals(callback.id, change.event.callbackId)
        assertEquals(EventAction.CANCEL, change.event.action)
        assertEquals(Status.SCHEDULED, change.event.from)
        assertEquals(Status.CANCELLED, change.event.to)
        assertEquals("org_a", change.organizationId)
    }

    @Test
    fun theFlowDeliversEveryChangeOnceInCommitOrder() = withOrg { _, org ->
        val from = cursorNow(org)
        val writer = thread {
            repeat(5) {
                val id = org.create(newCallback()).id
                org.cancel(id, null)
            }
        }
        val changes = runBlocking { withTimeout(10_000) { org.changesFlow(from).take(10).toList() } }
        writer.join()
        assertEquals(List(5) { listOf(EventAction.CREATE, EventAction.CANCEL) }.flatten(), changes.map { it.event.action })
        assertEquals(changes.map { it.cursor }.distinct(), changes.map { it.cursor })
        // Read again from the same cursor: the same changes, none missing.
        assertEquals(changes, org.changes(from, 100u, Duration.ZERO).changes)
    }

    @Test
    fun cancellingTheCollectorCancelsTheWatch() = withOrg { _, org ->
        val started = LinkedBlockingQueue<Watch>()
        runBlocking {
            val collector = launch(Dispatchers.Default) {
                org.changesFlow(Since.Now) { started.add(it) }.collect {}
            }
            val watch = assertNotNull(started.poll(10, TimeUnit.SECONDS), "the flow never started its watch")
            assertTrue(watch.isRunning())
            collector.cancel()
            collector.join()
            // awaitClose cancelled the watch and waited for its thread.
            assertFalse(watch.isRunning())
        }
    }

    @Test
    fun aCursorOfAnotherOrganizationIsAValidationErrorWhenCollected() = withOrg { store, org ->
        org.create(newCallback())
        val others = store.organization("org_b").use { it.changes(Since.Start, 10u, Duration.ZERO).nextCursor }
        val error = assertFailsWith<CallbackStoreException.ValidationException> {
            runBlocking { withTimeout(10_000) { org.changesFlow(Since.Cursor(others)).first() } }
        }
        assertEquals("VALIDATION_ERROR", error.code)
        assertTrue(error.reason.startsWith("since"), error.reason)
    }

    @Test
    fun anObserverThatThrowsStopsItsWatch() = withOrg { _, org ->
        val calls = CountDownLatch(1)
        val watch = org.watch(cursorNow(org), object : ChangeObserver {
            override fun onChanges(changes: List<Change>) {
                calls.countDown()
                throw IllegalStateException("enough")
            }

            override fun onError(error: CallbackStoreException) {}
        })
        watch.use {
            org.create(newCallback())
            assertTrue(calls.await(10, TimeUnit.SECONDS), "the observer was never called")
            val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10)
            while (it.isRunning() && System.nanoTime() < deadline) Thread.sleep(10)
            assertFalse(it.isRunning())
        }
    }
}
