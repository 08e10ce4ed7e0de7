package dev.callbackstore

import java.time.Instant
import java.time.ZoneOffset
import java.time.format.DateTimeFormatter

/**
 * The API's JSON shape of the records: `callback.toApiMap()` is the
 * callback object of the API reference, key for key in its order (then
 * the extension keys `timezone`, `expires_at`, `attempt`,
 * `previous_callback_id`), with
 * timestamps as the store writes them (`2019-08-24T14:15:22Z`) and statuses
 * as strings; `toApiJson()` is its JSON text.
 */
object ApiJson {
    private val SECONDS = DateTimeFormatter.ofPattern("uuuu-MM-dd'T'HH:mm:ss").withZone(ZoneOffset.UTC)

    /** RFC 3339 in UTC with `Z`: no fraction when the sub-second part is
     * zero, 3 digits for whole milliseconds, else 6 (below a microsecond is
     * dropped, as the store does). */
    @JvmStatic
    fun timestamp(t: Instant): String {
        val micros = t.nano / 1000
        val base = SECONDS.format(t)
        return when {
            micros == 0 -> "${base}Z"
            micros % 1000 == 0 -> "$base.%03dZ".format(micros / 1000)
            else -> "$base.%06dZ".format(micros)
        }
    }

    private fun ts(t: Instant?): String? = t?.let(::timestamp)

    private fun name(e: Enum<*>?): String? = e?.name?.lowercase()

    @JvmStatic
    fun callback(c: ScheduledCallback): Map<String, Any?> = linkedMapOf(
        "id" to c.id,
        "organization_id" to c.organizationId,
        "source_session_id" to c.sourceSessionId,
        "created_session_id" to c.createdSessionId,
        "agent_id" to c.agentId,
        "phone_number_id" to c.phoneNumberId,
        "to_number" to c.toNumber,
        "from_number" to c.fromNumber,
        "scheduled_at" to ts(c.scheduledAt),
        "status" to name(c.status),
        "reason" to c.reason,
        "instructions" to c.instructions,
        "summary" to c.summary,
        "pipeline_config" to c.pipelineConfig,
        "metadata" to c.metadata,
        "failure_cause" to c.failureCause,
        "attempted_at" to ts(c.attemptedAt),
        "dispatched_at" to ts(c.dispatchedAt),
        "cancelled_at" to ts(c.cancelledAt),
        "created_at" to ts(c.createdAt),
        "updated_at" to ts(c.updatedAt),
        // The extension keys of DESIGN.md, after the reference's 21.
        "timezone" to c.timezone,
        "expires_at" to ts(c.expiresAt),
        "attempt" to c.attempt.toLong(),
        "previous_callback_id" to c.previousCallbackId,
    )

    /** A claim as Rust serializes it and the conformance vectors expect it:
     * the callback as it was when claimed, and the fencing token (32
     * lowercase hex digits). */
    @JvmStatic
    fun claim(c: Claim): Map<String, Any?> = linkedMapOf(
        "callback" to callback(c.callback()),
        "token" to c.token(),
    )

    @JvmStatic
    fun page(p: Page): Map<String, Any?> = linkedMapOf(
        "callbacks" to p.callbacks.map(::callback),
        "next_cursor" to p.nextCursor,
    )

    @JvmStatic
    fun event(e: CallbackEvent): Map<String, Any?> = linkedMapOf(
        "callback_id" to e.callbackId,
        "action" to name(e.action),
        "from" to name(e.from),
        "to" to name(e.to),
        "at" to ts(e.at),
        "detail" to e.detail,
    )

    @JvmStatic
    fun apiKey(k: ApiKey): Map<String, Any?> = linkedMapOf(
        "id" to k.id,
        "organization_id" to k.organizationId,
        "label" to k.label,
        "created_at" to ts(k.createdAt),
        "revoked_at" to ts(k.revokedAt),
    )

    @JvmStatic
    fun createdApiKey(k: CreatedApiKey): Map<String, Any?> = linkedMapOf(
        "key" to apiKey(k.key),
        "token" to k.token,
    )

    @JvmStatic
    fun dispatchReport(r: DispatchReport): Map<String, Any?> = linkedMapOf(
        "dispatched" to r.dispatched.map(::callback),
        "failed" to r.failed.map(::callback),
    )

    /** A calling policy as the API writes it: days and outcomes as their
     * API strings (`"mon"`, `"no_answer"`). */
    @JvmStatic
    fun callingPolicy(p: CallingPolicy): Map<String, Any?> = linkedMapOf(
        "timezone" to p.timezone,
        "windows" to p.windows.map(::callingWindow),
        "max_attempts" to p.maxAttempts.toLong(),
        "retry_intervals" to p.retryIntervals,
        "retry_on" to p.retryOn.map(::name),
    )

    @JvmStatic
    fun callingWindow(w: CallingWindow): Map<String, Any?> = linkedMapOf(
        "days" to w.days.map(::name),
        "start" to w.start,
        "end" to w.end,
    )

    /** The API shape of any record, or of a list of records. */
    @JvmStatic
    fun of(value: Any?): Any? = when (value) {
        is ScheduledCallback -> callback(value)
        is Claim -> claim(value)
        is Page -> page(value)
        is CallbackEvent -> event(value)
        is ApiKey -> apiKey(value)
        is CreatedApiKey -> createdApiKey(value)
        is DispatchReport -> dispatchReport(value)
        is CallingPolicy -> callingPolicy(value)
        is CallingWindow -> callingWindow(value)
        is Instant -> timestamp(value)
        is Enum<*> -> name(value)
        is List<*> -> value.map(::of)
        else -> value
    }
}

fun ScheduledCallback.toApiMap(): Map<String, Any?> = ApiJson.callback(this)
fun Claim.toApiMap(): Map<String, Any?> = ApiJson.claim(this)
fun Page.toApiMap(): Map<String, Any?> = ApiJson.page(this)
fun CallbackEvent.toApiMap(): Map<String, Any?> = ApiJson.event(this)
fun ApiKey.toApiMap(): Map<String, Any?> = ApiJson.apiKey(this)
fun CallingPolicy.toApiMap(): Map<String, Any?> = ApiJson.callingPolicy(this)

fun ScheduledCallback.toApiJson(): String = Json.encode(toApiMap())
fun Page.toApiJson(): String = Json.encode(toApiMap())
