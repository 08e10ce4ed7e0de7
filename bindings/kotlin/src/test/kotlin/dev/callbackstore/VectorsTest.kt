package dev.callbackstore

import java.io.File
import java.time.Duration
import java.time.Instant
import kotlin.test.assertEquals
import kotlin.test.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/** Replays the conformance vectors (the JSON files of tests/vectors, format in
 * tests/vectors/README.md) through the Kotlin bindings. The folder is the
 * system property `callbackstore.vectors` (default `tests/vectors`). */
@RunWith(Parameterized::class)
class VectorsTest(private val name: String, private val case: Map<String, Any?>) {
    companion object {
        fun dir(): File = File(System.getProperty("callbackstore.vectors", "tests/vectors"))

        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): List<Array<Any>> {
            val files = dir().listFiles { f -> f.name.endsWith(".json") }?.sortedBy { it.name }
                ?: error("no vectors folder at ${dir().absolutePath}")
            return files.flatMap { file ->
                (Json.parse(file.readText()) as List<*>).map { raw ->
                    @Suppress("UNCHECKED_CAST")
                    val case = (raw as Map<String, Any?>) + ("_file" to file.name)
                    arrayOf<Any>(case["name"] as String, case)
                }
            }
        }
    }

    class CaseFailure(message: String) : AssertionError(message)

    /** Every claim object the case was handed, by token: a vector cannot
     * write a claim, so `place_call` names the one to pass by its token. */
    private val claims = HashMap<String, Claim>()

    /** Calls of every dialer of the case (`dials`), whatever they returned. */
    private var dials = 0L

    @Test
    fun replay() {
        val clock = ManualClock(ts(case["clock"]))
        val store = Store.openInMemory(StoreOptions(clock = clock))
        val saved = HashMap<String, String>()
        @Suppress("UNCHECKED_CAST")
        val steps = case["steps"] as List<Map<String, Any?>>
        store.use {
            try {
                for ((index, step) in steps.withIndex()) {
                    runStep(store, clock, saved, step, "case $name (${case["_file"]}), step $index (${step["op"]})")
                }
            } finally {
                claims.values.forEach(Claim::close)
            }
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun runStep(store: Store, clock: ManualClock, saved: MutableMap<String, String>, step: Map<String, Any?>, where: String) {
        val op = step["op"] as String
        val args = expand(step["args"] ?: emptyMap<String, Any?>(), saved) as Map<String, Any?>
        when (op) {
            "set_clock" -> return clock.set(ts(args["now"]))
            "advance_clock" -> return clock.advance(Duration.ofSeconds(num(args["seconds"])))
        }
        // `"expect": null` is compared like any other value; only an absent
        // expect leaves the result uncompared.
        val hasExpect = "expect" in step
        val expect = if (hasExpect) expand(step["expect"], saved) else null
        // {"error": CODE} or {"error": CODE, "field": FIELD}: the message
        // then names FIELD first, as the store's `field: rule`.
        val errorShape = (expect as? Map<*, *>)?.takeIf { "error" in it.keys && setOf("error", "field").containsAll(it.keys) }
        val expectedError = errorShape?.get("error")
        val expectedField = errorShape?.get("field") as String?
        val result = try {
            if ("org" in step) {
                store.organization(expand(step["org"], saved) as String).use { orgOp(it, op, args) }
            } else {
                storeOp(store, op, args)
            }
        } catch (e: CallbackStoreException) {
            val code = e.code
            if (expectedError == null) throw CaseFailure("$where: expected success, got $code: ${e.message}")
            if (code != expectedError) throw CaseFailure("$where: expected error $expectedError, got $code: ${e.message}")
            if (expectedField != null && !e.reason.startsWith("$expectedField: ")) {
                throw CaseFailure("$where: expected $code naming $expectedField, got: ${e.reason}")
            }
            return
        }
        when (result) {
            is Claim -> claims[result.token()] = result
            is List<*> -> result.filterIsInstance<Claim>().forEach { claims[it.token()] = it }
        }
        val actual = ApiJson.of(result)
        if (expectedError != null) {
            throw CaseFailure("$where: expected error $expectedError, got success:\n${Json.encode(actual)}")
        }
        if (hasExpect && !matches(expect, actual)) {
            throw CaseFailure("$where: result differs\nexpected: ${Json.encode(expect)}\nactual:   ${Json.encode(actual)}")
        }
        for ((saveName, path) in (step["save"] as Map<String, Any?>?).orEmpty()) {
            val value = atPath(actual, path as String, where)
            saved[saveName] = value as? String ?: throw CaseFailure("$where: saved $saveName at '$path' is not a string: $value")
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun orgOp(org: Organization, op: String, a: Map<String, Any?>): Any? = when (op) {
        "create" -> org.create(newCallback(a["callback"] as Map<String, Any?>))
        "create_many" -> org.createMany((a["callbacks"] as List<Map<String, Any?>>).map(::newCallback))
        "get" -> org.get(a["id"] as String)
        "list" -> org.list(listQuery((a["query"] ?: emptyMap<String, Any?>()) as Map<String, Any?>))
        "cancel" -> org.cancel(a["id"] as String, a["reason"] as String?)
        "dispatch" -> org.dispatch(a["id"] as String)
        "complete_dispatch" ->
            org.completeDispatch(a["id"] as String, a["created_session_id"] as String, a["claim_token"] as String?)
        "fail_dispatch" -> org.failDispatch(a["id"] as String, a["failure_cause"] as String, a["claim_token"] as String?)
        "reschedule" -> org.reschedule(a["id"] as String, ts(a["scheduled_at"]))
        "history" -> org.history(a["id"] as String)
        "calling_policy" -> org.callingPolicy()
        "set_calling_policy" -> org.setCallingPolicy(callingPolicy(a["policy"] as Map<String, Any?>))
        "agent_calling_policy" -> org.agentCallingPolicy(a["agent_id"] as String)
        "set_agent_calling_policy" ->
            org.setAgentCallingPolicy(a["agent_id"] as String, callingPolicy(a["policy"] as Map<String, Any?>))
        "clear_agent_calling_policy" -> org.clearAgentCallingPolicy(a["agent_id"] as String).let { null }
        "retry" -> org.retry(a["id"] as String, CallOutcome.valueOf((a["outcome"] as String).uppercase()))
        else -> throw CaseFailure("unknown organization op $op")
    }

    @Suppress("UNCHECKED_CAST")
    private fun storeOp(store: Store, op: String, a: Map<String, Any?>): Any? = when (op) {
        "claim_due" -> store.claimDue(ts(a["now"]), num(a["limit"]).toUInt())
        "claim_by_token" -> store.claimByToken(a["id"] as String, a["token"] as String)
        "place_call" -> {
            val claim = claims[a["token"] as String]
                ?: throw CaseFailure("broken vector: place_call of token ${a["token"]}, which no step handed out")
            store.placeCall(dialer(a["dialer"] as Map<String, Any?>), claim)
        }
        "dials" -> dials
        "recover_stale" -> store.recoverStale(ts(a["now"]), Duration.ofSeconds(num(a["older_than_seconds"])))
        "prune" -> store.prune(ts(a["before"])).toLong()
        "expire_overdue" -> store.expireOverdue(ts(a["now"]), num(a["limit"]).toUInt())
        "create_api_key" -> store.createApiKey(a["organization_id"] as String, a["label"] as String)
        "revoke_api_key" -> store.revokeApiKey(a["key_id"] as String)
        "authenticate" -> store.authenticate(a["authorization"] as String).use { mapOf("organization_id" to it.id()) }
        else -> throw CaseFailure("unknown store op $op")
    }

    /** `{"session": S}` answers S, `{"error": M}` fails with M; either way
     * the call counts for `dials`. */
    private fun dialer(spec: Map<String, Any?>): Dispatcher {
        val session = spec["session"] as String?
        val error = spec["error"] as String?
        if (spec.size != 1 || (session == null && error == null)) throw CaseFailure("broken vector: dialer $spec")
        return object : Dispatcher {
            override fun placeCall(callback: ScheduledCallback): String {
                dials++
                if (error != null) throw DispatchException.Failed(error)
                return session!!
            }
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun newCallback(o: Map<String, Any?>) = NewCallback(
        toNumber = o["to_number"] as String,
        scheduledAt = ts(o["scheduled_at"]),
        sourceSessionId = o["source_session_id"] as String?,
        agentId = o["agent_id"] as String?,
        phoneNumberId = o["phone_number_id"] as String?,
        fromNumber = o["from_number"] as String?,
        reason = o["reason"] as String?,
        instructions = o["instructions"] as String?,
        summary = o["summary"] as String?,
        pipelineConfig = o["pipeline_config"] as Map<String, Any?>?,
        metadata = o["metadata"] as Map<String, Any?>?,
        idempotencyKey = o["idempotency_key"] as String?,
        timezone = o["timezone"] as String?,
        expiresAt = o["expires_at"]?.let(::ts),
    )

    /** A policy's JSON; absent keys are the default policy's. */
    @Suppress("UNCHECKED_CAST")
    private fun callingPolicy(o: Map<String, Any?>): CallingPolicy {
        val unknown = o.keys - setOf("timezone", "windows", "max_attempts", "retry_intervals", "retry_on")
        if (unknown.isNotEmpty()) throw CaseFailure("broken vector: unknown policy keys $unknown")
        val default = defaultCallingPolicy()
        return CallingPolicy(
            timezone = o["timezone"] as String? ?: default.timezone,
            windows = (o["windows"] as List<Map<String, Any?>>?)?.map { w ->
                CallingWindow(
                    days = (w["days"] as List<String>).map { Weekday.valueOf(it.uppercase()) },
                    start = w["start"] as String,
                    end = w["end"] as String,
                )
            } ?: default.windows,
            maxAttempts = o["max_attempts"]?.let { num(it).toUInt() } ?: default.maxAttempts,
            retryIntervals = o["retry_intervals"] as List<String>? ?: default.retryIntervals,
            retryOn = (o["retry_on"] as List<String>?)?.map { CallOutcome.valueOf(it.uppercase()) } ?: default.retryOn,
        )
    }

    private fun listQuery(o: Map<String, Any?>) = ListQuery(
        status = (o["status"] as String?)?.let { Status.valueOf(it.uppercase()) },
        sourceSessionId = o["source_session_id"] as String?,
        agentId = o["agent_id"] as String?,
        toNumber = o["to_number"] as String?,
        scheduledAfter = o["scheduled_after"]?.let(::ts),
        scheduledBefore = o["scheduled_before"]?.let(::ts),
        order = (o["order"] as String?)?.let { Order.valueOf(it.uppercase()) },
        limit = o["limit"]?.let { num(it).toUInt() },
        cursor = o["cursor"] as String?,
    )

    private fun ts(value: Any?): Instant = Instant.parse(value as String)

    private fun num(value: Any?): Long = (value as Number).toLong()

    private fun expand(value: Any?, saved: Map<String, String>): Any? = when {
        value is Map<*, *> && value.keys == setOf("\$repeat", "times") ->
            (value["\$repeat"] as String).repeat(num(value["times"]).toInt())
        value is Map<*, *> && value.keys == setOf("\$concat") ->
            (value["\$concat"] as List<*>).joinToString("") {
                expand(it, saved) as? String ?: throw CaseFailure("\$concat of a non-string: $it")
            }
        value is Map<*, *> -> value.entries.associate { (k, v) -> k as String to expand(v, saved) }
        value is List<*> -> value.map { expand(it, saved) }
        value is String && value.startsWith("$") && value != "\$any" ->
            saved[value.substring(1)] ?: throw CaseFailure("broken vector: $value was never saved")
        else -> value
    }

    private fun matches(expected: Any?, actual: Any?): Boolean = when {
        expected == "\$any" -> actual != null
        expected is Number && actual is Number ->
            if (expected is Double || actual is Double) expected.toDouble() == actual.toDouble()
            else expected.toLong() == actual.toLong()
        expected is Map<*, *> -> actual is Map<*, *> && expected.keys == actual.keys &&
            expected.keys.all { matches(expected[it], actual[it]) }
        expected is List<*> -> actual is List<*> && expected.size == actual.size &&
            expected.indices.all { matches(expected[it], actual[it]) }
        else -> expected == actual
    }

    private fun atPath(result: Any?, path: String, where: String): Any? {
        var value = result
        for (segment in if (path.isEmpty()) emptyList() else path.split(".")) {
            value = when {
                segment.all(Char::isDigit) && value is List<*> && segment.toInt() < value.size -> value[segment.toInt()]
                value is Map<*, *> && segment in value -> value[segment]
                else -> throw CaseFailure("$where: save path '$path': nothing at $segment")
            }
        }
        return value
    }
}

/** Every vector file is loaded: at least 45 cases, with unique names. */
class VectorsCountTest {
    @Test
    fun thereAreEnoughVectors() {
        val names = VectorsTest.cases().map { it[0] as String }
        assertTrue(names.size >= 45, "only ${names.size} cases in ${VectorsTest.dir()}")
        assertEquals(names.size, names.toSet().size, "case names must be unique")
        val files = VectorsTest.cases().map { (it[1] as Map<*, *>)["_file"] }.toSet()
        assertTrue("claims.json" in files, "the claim vectors are not replayed: only $files")
        assertTrue("calling_policy.json" in files, "the calling policy vectors are not replayed: only $files")
    }
}
