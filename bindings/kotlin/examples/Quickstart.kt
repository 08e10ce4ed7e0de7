// Quickstart: the main of QuickstartKt; argument: path of the database file.
import dev.callbackstore.*
import java.time.Instant

fun main(args: Array<String>) {
    Store.open(args.firstOrNull() ?: "callbacks.db").use { store ->
        store.organization("org_acme").use { acme ->
            // An analysis decided: call this person back on Tuesday at 10.
            val tuesday = Instant.parse("2030-03-05T10:00:00Z")
            val callback = acme.create(
                NewCallback(
                    toNumber = "+12015551234",
                    scheduledAt = tuesday,
                    sourceSessionId = "sess_123",
                    reason = "asked to be called back after the meeting",
                    metadata = mapOf("lead_score" to 0.9),
                    idempotencyKey = "sess_123#0", // a retry returns the same callback
                )
            )
            println("${callback.id} ${callback.status}") // cb_... SCHEDULED

            val page = acme.list(ListQuery(sourceSessionId = "sess_123"))
            println(page.toApiJson()) // {"callbacks":[{...}],"next_cursor":null}

            val dialer = object : Dispatcher {
                // Place the call with your telephony provider; return its session id.
                // Throwing fails the callback with the exception's message.
                override fun placeCall(callback: ScheduledCallback) = "sess_for_${callback.id}"
            }
            // A worker: claims every callback due, places each claim once.
            val report = store.dispatchDue(dialer, tuesday, 100u)
            println("${report.dispatched.size} dispatched") // 1 dispatched

            // Call someone now: dispatch hands out a claim (the callback and a
            // fencing token); placing it spends it, then dials.
            val urgent = acme.create(NewCallback(toNumber = "+12015559876", scheduledAt = tuesday))
            val claim = acme.dispatch(urgent.id)
            val placed = store.placeCall(dialer, claim)
            println("${placed.id} ${placed.status}") // cb_... DISPATCHED
            try {
                store.placeCall(dialer, claim) // the same claim again: nobody is called
            } catch (e: CallbackStoreException.InvalidTransition) {
                println("${e.code} ${e.reason}") // INVALID_TRANSITION cannot place_call callback cb_...: stale claim: ...
            }

            try {
                acme.cancel(callback.id)
            } catch (e: CallbackStoreException.InvalidTransition) {
                println("${e.code} ${e.reason}") // INVALID_TRANSITION cannot cancel callback cb_...
            }
        }
    }
}
