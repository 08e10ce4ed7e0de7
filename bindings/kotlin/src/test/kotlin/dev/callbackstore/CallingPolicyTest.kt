package dev.callbackstore

import java.time.Duration
import java.time.Instant
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.Test

/** The calling policy from Kotlin: the organization's and an agent's
 * policies, a callback's own zone and deadline, windows refusing "dispatch
 * now", follow-up attempts, the deadline sweep. The rules are the core's
 * (and the conformance vectors'); these tests prove each reaches Kotlin
 * typed, its errors as exceptions with `code`. */
class CallingPolicyTest {
    // Tuesday 09:00Z: 04:00 in New York (EST).
    private val t0: Instant = Instant.parse("2030-01-01T09:00:00Z")
    private val everyDay = Weekday.values().toList()

    private fun newYork8To21() = defaultCallingPolicy().copy(
        timezone = "America/New_York",
        windows = listOf(CallingWindow(days = everyDay, start = "08:00", end = "21:00")),
    )

    private fun retries(max: UInt, interval: String, vararg on: CallOutcome) =
        defaultCallingPolicy().copy(maxAttempts = max, retryIntervals = listOf(interval), retryOn = on.toList())

    private fun withOrg(body: (Store, Organization, ManualClock) -> Unit) {
        val clock = ManualClock(t0)
        Store.openInMemory(StoreOptions(clock = clock)).use { store ->
            store.organization("org_a").use { org -> body(store, org, clock) }
        }
    }

    private fun newCallback(
        at: Instant = t0,
        agentId: String? = null,
        timezone: String? = null,
        expiresAt: Instant? = null,
    ) = NewCallback(toNumber = "+12015551234", scheduledAt = at, agentId = agentId, timezone = timezone, expiresAt = expiresAt)

    @Test
    fun aSetPolicyReadsBackTypedAndInTheApiShape() = withOrg { _, org, _ ->
        assertEquals(
            CallingPolicy("UTC", emptyList(), 1u, listOf("1h"), listOf(CallOutcome.NO_ANSWER, CallOutcome.BUSY, CallOutcome.VOICEMAIL)),
            org.callingPolicy(),
        )
        val wanted = newYork8To21()
        assertEquals(wanted, org.setCallingPolicy(wanted))
        assertEquals(wanted, org.callingPolicy())
        assertEquals(
            mapOf(
                "timezone" to "America/New_York",
                "windows" to listOf(mapOf("days" to listOf("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "start" to "08:00", "end" to "21:00")),
                "max_attempts" to 1L,
                "retry_intervals" to listOf("1h"),
                "retry_on" to listOf("no_answer", "busy", "voicemail"),
            ),
            org.callingPolicy().toApiMap(),
        )
    }

    @Test
    fun anAgentsPolicyOverridesTheOrganizationsUntilCleared() = withOrg { _, org, _ ->
        org.setCallingPolicy(newYork8To21())
        assertNull(org.agentCallingPolicy("agent_1"))
        val own = retries(3u, "2h", CallOutcome.NO_ANSWER)
        assertEquals(own, org.setAgentCallingPolicy("agent_1", own))
        assertEquals(own, org.agentCallingPolicy("agent_1"))
        assertEquals(newYork8To21(), org.callingPolicy())
        // 04:00 in New York: only agent_1's callback (no windows) may ring.
        val mine = org.create(newCallback(agentId = "agent_1"))
        val theirs = org.create(newCallback(agentId = "agent_2"))
        org.dispatch(mine.id).close()
        assertEquals("INVALID_TRANSITION", assertFailsWith<CallbackStoreException.InvalidTransition> { org.dispatch(theirs.id) }.code)
        org.clearAgentCallingPolicy("agent_1")
        assertNull(org.agentCallingPolicy("agent_1"))
        assertEquals("NOT_FOUND", assertFailsWith<CallbackStoreException.NotFound> { org.clearAgentCallingPolicy("agent_1") }.code)
    }

    @Test
    fun createKeepsAZoneAndADeadlineAndTheApiMapEndsWithTheExtensionKeys() = withOrg { _, org, _ ->
        val deadline = t0.plus(Duration.ofDays(2))
        val cb = org.create(newCallback(timezone = "Asia/Kathmandu", expiresAt = deadline))
        assertEquals("Asia/Kathmandu", cb.timezone)
        assertEquals(deadline, cb.expiresAt)
        assertEquals(1u, cb.attempt)
        assertNull(cb.previousCallbackId)
        val row = cb.toApiMap()
        assertEquals(25, row.size)
        assertEquals(listOf("timezone", "expires_at", "attempt", "previous_callback_id"), row.keys.toList().takeLast(4))
        assertEquals("2030-01-03T09:00:00Z", row["expires_at"])
        for ((bad, field) in listOf(
            newCallback(at = deadline, expiresAt = deadline) to "expires_at",
            newCallback(timezone = "Mars/Olympus") to "timezone",
        )) {
            val e = assertFailsWith<CallbackStoreException.ValidationException> { org.create(bad) }
            assertTrue(e.reason.startsWith("$field: "), e.reason)
        }
    }

    @Test
    fun dispatchOutsideTheWindowIsAnInvalidTransitionNamingTheNextOpening() = withOrg { _, org, clock ->
        org.setCallingPolicy(newYork8To21())
        val cb = org.create(newCallback())
        val e = assertFailsWith<CallbackStoreException.InvalidTransition> { org.dispatch(cb.id) }
        assertEquals("INVALID_TRANSITION", e.code)
        // 08:00 EST = 13:00Z.
        assertTrue("2030-01-01T13:00:00Z" in e.reason, e.reason)
        assertEquals(Status.SCHEDULED, org.get(cb.id).status)
        clock.set(Instant.parse("2030-01-01T13:00:00Z"))
        org.dispatch(cb.id).use { assertEquals(Status.DISPATCHING, it.callback().status) }
    }

    @Test
    fun retryCreatesAttempt2OnceAndRefusesAnOutcomeNotListed() = withOrg { _, org, _ ->
        org.setCallingPolicy(retries(3u, "2h", CallOutcome.NO_ANSWER))
        val cb = org.create(newCallback())
        org.dispatch(cb.id).close()
        org.completeDispatch(cb.id, "sess_1")
        val followUp = org.retry(cb.id, CallOutcome.NO_ANSWER)
        assertEquals(2u, followUp.attempt)
        assertEquals(cb.id, followUp.previousCallbackId)
        assertEquals(Status.SCHEDULED, followUp.status)
        assertEquals(t0.plus(Duration.ofHours(2)), followUp.scheduledAt)
        // Asked again: the same follow-up, and the call itself unchanged.
        assertEquals(followUp, org.retry(cb.id, CallOutcome.NO_ANSWER))
        assertEquals(Status.DISPATCHED, org.get(cb.id).status)
        assertEquals(EventAction.RETRY, org.history(cb.id).last().action)

        val other = org.create(newCallback())
        org.dispatch(other.id).close()
        org.completeDispatch(other.id, "sess_2")
        val e = assertFailsWith<CallbackStoreException.InvalidTransition> { org.retry(other.id, CallOutcome.BUSY) }
        assertEquals("INVALID_TRANSITION", e.code)
    }

    @Test
    fun failDispatchCreatesTheFollowUpWhenThePolicyRetriesFailed() = withOrg { _, org, _ ->
        org.setCallingPolicy(retries(2u, "30m", CallOutcome.FAILED))
        val cb = org.create(newCallback())
        org.dispatch(cb.id).close()
        assertEquals(Status.FAILED, org.failDispatch(cb.id, "carrier error").status)
        val followUp = org.list(ListQuery(status = Status.SCHEDULED)).callbacks.single()
        assertEquals(2u, followUp.attempt)
        assertEquals(cb.id, followUp.previousCallbackId)
        assertEquals(t0.plus(Duration.ofMinutes(30)), followUp.scheduledAt)
    }

    @Test
    fun expireOverdueFailsCallbacksStillScheduledAtTheirDeadline() = withOrg { store, org, _ ->
        val deadline = t0.plus(Duration.ofHours(2))
        val cb = org.create(newCallback(at = t0.plus(Duration.ofHours(1)), expiresAt = deadline))
        assertEquals(emptyList(), store.expireOverdue(deadline.minusNanos(1000), 10u))
        val expired = store.expireOverdue(deadline, 10u).single()
        assertEquals(cb.id, expired.id)
        assertEquals(Status.FAILED, expired.status)
        assertEquals(expired(), expired.failureCause)
        assertEquals("expired", expired())
        assertEquals(listOf(EventAction.CREATE, EventAction.EXPIRE), org.history(cb.id).map { it.action })
        assertEquals(emptyList(), store.claimDue(deadline, 10u))
    }

    @Test
    fun aBadPolicyIsRefusedNamingItsFieldAndChangesNothing() = withOrg { _, org, _ ->
        val window = CallingWindow(days = listOf(Weekday.MON), start = "08:00", end = "08:00")
        for ((bad, field) in listOf(
            defaultCallingPolicy().copy(windows = listOf(window)) to "windows[0].end",
            defaultCallingPolicy().copy(maxAttempts = 21u) to "max_attempts",
            defaultCallingPolicy().copy(retryIntervals = listOf("-2h")) to "retry_intervals[0]",
        )) {
            val e = assertFailsWith<CallbackStoreException.ValidationException> { org.setCallingPolicy(bad) }
            assertTrue(e.reason.startsWith("$field: "), e.reason)
        }
        assertEquals(defaultCallingPolicy(), org.callingPolicy())
    }

    @Test
    fun tzdbVersionNamesTheCompiledTimeZoneDatabase() {
        assertTrue(Regex("20\\d\\d[a-z]").matches(tzdbVersion()), tzdbVersion())
    }
}
