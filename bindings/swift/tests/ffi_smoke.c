/*
 * Calls the built library through the C header generated for Swift
 * (callback_storeFFI.h), as the Swift bindings do: contract version, every
 * API checksum the Swift file expects, and real calls (open a store, create
 * a callback, read it back, a NOT_FOUND error decoded from its buffer, the
 * default calling policy and the time zone database's version, and
 * a claim: dispatch hands out a Claim object whose token alone completes
 * the callback; a forged token is INVALID_TRANSITION).
 *
 * Built by scripts/test-bindings.sh with CHECKSUMS_INC naming a generated
 * file of CHECKSUM(function, expected) lines, CHECKSUM_COUNT the number of
 * checksum functions the header declares and CONTRACT_VERSION the version
 * the Swift file expects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callback_storeFFI.h"

static int failures = 0;

#define EXPECT(cond, ...)                                   \
    do {                                                    \
        if (!(cond)) {                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                   \
            fprintf(stderr, "\n");                          \
            failures++;                                     \
        }                                                   \
    } while (0)

/* A growable byte buffer for serializing arguments the uniffi way. */
typedef struct {
    uint8_t data[512];
    int32_t len;
} Bytes;

static void put_u8(Bytes *b, uint8_t v) { b->data[b->len++] = v; }

static void put_i32(Bytes *b, int32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) put_u8(b, (uint8_t)((uint32_t)v >> shift));
}

static void put_string(Bytes *b, const char *s) {
    int32_t n = (int32_t)strlen(s);
    put_i32(b, n);
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
}

static RustBuffer to_rust(const uint8_t *data, int32_t len) {
    RustCallStatus status = {0};
    ForeignBytes bytes = {len, data};
    RustBuffer buf = ffi_callback_store_ffi_rustbuffer_from_bytes(bytes, &status);
    EXPECT(status.code == 0, "rustbuffer_from_bytes failed");
    return buf;
}

/* A top-level String argument is its UTF-8 bytes. */
static RustBuffer rust_string(const char *s) { return to_rust((const uint8_t *)s, (int32_t)strlen(s)); }

static void free_buffer(RustBuffer buf) {
    RustCallStatus status = {0};
    ffi_callback_store_ffi_rustbuffer_free(buf, &status);
    EXPECT(status.code == 0, "rustbuffer_free failed");
}

static int32_t read_i32(const uint8_t *p) {
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]);
}

/* Copies the serialized string at *offset into out (NUL-terminated). */
static void read_string(RustBuffer buf, uint64_t *offset, char *out, size_t size) {
    int32_t n = read_i32(buf.data + *offset);
    *offset += 4;
    size_t copy = (size_t)n < size - 1 ? (size_t)n : size - 1;
    memcpy(out, buf.data + *offset, copy);
    out[copy] = 0;
    *offset += (uint64_t)n;
}

/* Copies a top-level String result (its bare UTF-8 bytes) into out. */
static void take_string(RustBuffer buf, char *out, size_t size) {
    size_t copy = buf.len < size - 1 ? (size_t)buf.len : size - 1;
    if (copy > 0) memcpy(out, buf.data, copy);
    out[copy] = 0;
    free_buffer(buf);
}

/* The call behind *error failed with CallbackStoreError variant `variant`
 * (1-based, in the order of bindings/src/error.rs), whose code is `code` and
 * whose reason contains `reason_has`. */
static void expect_error(RustCallStatus *error, int32_t variant, const char *code, const char *reason_has) {
    EXPECT(error->code == 1, "status %d, expected 1 (error %s)", error->code, code);
    if (error->code != 1) return;
    char got_code[64] = {0};
    char reason[256] = {0};
    uint64_t offset = 4;
    read_string(error->errorBuf, &offset, got_code, sizeof got_code);
    read_string(error->errorBuf, &offset, reason, sizeof reason);
    EXPECT(read_i32(error->errorBuf.data) == variant, "error variant %d, expected %d", read_i32(error->errorBuf.data),
           variant);
    EXPECT(strcmp(got_code, code) == 0, "error code '%s', expected '%s'", got_code, code);
    EXPECT(strstr(reason, reason_has) != NULL, "error reason '%s' does not contain '%s'", reason, reason_has);
    free_buffer(error->errorBuf);
}

/* An Option<String> argument: 1, then the length-prefixed string. */
static RustBuffer some_string(const char *s) {
    Bytes b = {{0}, 0};
    put_u8(&b, 1);
    put_string(&b, s);
    return to_rust(b.data, b.len);
}

static int check_checksums(void) {
    int checked = 0;
#define CHECKSUM(fn, expected)                                                        \
    do {                                                                              \
        EXPECT(fn() == (expected), "%s() is %u, the Swift file expects %u", #fn,      \
               (unsigned)fn(), (unsigned)(expected));                                 \
        checked++;                                                                    \
    } while (0);
#include CHECKSUMS_INC
#undef CHECKSUM
    return checked;
}

int main(void) {
    RustCallStatus status = {0};

    uint32_t contract = ffi_callback_store_ffi_uniffi_contract_version();
    EXPECT(contract == CONTRACT_VERSION, "contract version %u, the Swift file expects %u", contract,
           (unsigned)CONTRACT_VERSION);
    int checksums = check_checksums();
    EXPECT(checksums > 0 && checksums == CHECKSUM_COUNT, "%d checksums checked, the header declares %d", checksums,
           CHECKSUM_COUNT);

    /* A call with no buffers at all. */
    uint32_t limit = uniffi_callback_store_ffi_fn_func_default_limit(&status);
    EXPECT(status.code == 0 && limit == 25, "default_limit() = %u (status %d)", limit, status.code);

    /* Store.open_in_memory(options: None): an Option is 0 for None. */
    uint8_t none = 0;
    uint64_t store = uniffi_callback_store_ffi_fn_constructor_store_open_in_memory(to_rust(&none, 1), &status);
    EXPECT(status.code == 0 && store != 0, "open_in_memory failed (status %d)", status.code);

    /* Methods consume a handle: pass a clone, keep the original. */
    uint64_t store_ref = uniffi_callback_store_ffi_fn_clone_store(store, &status);
    uint64_t org = uniffi_callback_store_ffi_fn_method_store_organization(store_ref, rust_string("org_c"), &status);
    EXPECT(status.code == 0 && org != 0, "organization failed (status %d)", status.code);

    /* create(NewCallback): to_number, scheduled_at, then twelve absent
     * Options (the ten of the reference's fields and idempotency_key, then
     * timezone and expires_at). */
    Bytes input = {{0}, 0};
    put_string(&input, "+12015551234");
    put_string(&input, "2030-03-05T10:00:00Z");
    for (int i = 0; i < 12; i++) put_u8(&input, 0);
    RustBuffer created = uniffi_callback_store_ffi_fn_method_organization_create(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), to_rust(input.data, input.len), &status);
    EXPECT(status.code == 0, "create failed (status %d)", status.code);
    char id[128] = {0};
    char org_id[128] = {0};
    uint64_t offset = 0;
    if (status.code == 0) {
        read_string(created, &offset, id, sizeof id);
        read_string(created, &offset, org_id, sizeof org_id);
        free_buffer(created);
    }
    EXPECT(strncmp(id, "cb_", 3) == 0, "created id is '%s'", id);
    EXPECT(strcmp(org_id, "org_c") == 0, "organization_id is '%s'", org_id);

    /* get(id) finds it... */
    RustBuffer got = uniffi_callback_store_ffi_fn_method_organization_get(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), rust_string(id), &status);
    EXPECT(status.code == 0, "get failed (status %d)", status.code);
    if (status.code == 0) {
        char again[128] = {0};
        offset = 0;
        read_string(got, &offset, again, sizeof again);
        EXPECT(strcmp(again, id) == 0, "get returned '%s'", again);
        free_buffer(got);
    }

    /* ...and a missing one is CallbackStoreError.NotFound (variant 2) with
     * code "NOT_FOUND", decoded from the error buffer. */
    RustCallStatus error = {0};
    uniffi_callback_store_ffi_fn_method_organization_get(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), rust_string("cb_missing"), &error);
    expect_error(&error, 2, "NOT_FOUND", "cb_missing");

    /* The calling policy: an organization without one reads the default,
     * whose first field is the time zone "UTC"; tzdb_version() names the
     * compiled time zone database. */
    RustBuffer policy = uniffi_callback_store_ffi_fn_method_organization_calling_policy(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), &status);
    EXPECT(status.code == 0, "calling_policy failed (status %d)", status.code);
    if (status.code == 0) {
        char zone[64] = {0};
        offset = 0;
        read_string(policy, &offset, zone, sizeof zone);
        EXPECT(strcmp(zone, "UTC") == 0, "default policy's timezone '%s'", zone);
        free_buffer(policy);
    }
    char tzdb[32] = {0};
    take_string(uniffi_callback_store_ffi_fn_func_tzdb_version(&status), tzdb, sizeof tzdb);
    EXPECT(status.code == 0 && strlen(tzdb) == 5 && strncmp(tzdb, "20", 2) == 0, "tzdb_version() = '%s'", tzdb);

    /* dispatch(id) hands out a Claim: a handle, with the callback's id and
     * a token of 32 lowercase hex digits. */
    uint64_t claim = uniffi_callback_store_ffi_fn_method_organization_dispatch(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), rust_string(id), &status);
    EXPECT(status.code == 0 && claim != 0, "dispatch failed (status %d)", status.code);
    char token[64] = {0};
    char claimed[128] = {0};
    take_string(uniffi_callback_store_ffi_fn_method_claim_token(uniffi_callback_store_ffi_fn_clone_claim(claim, &status),
                                                                &status),
                token, sizeof token);
    take_string(uniffi_callback_store_ffi_fn_method_claim_id(uniffi_callback_store_ffi_fn_clone_claim(claim, &status),
                                                             &status),
                claimed, sizeof claimed);
    EXPECT(status.code == 0 && strcmp(claimed, id) == 0, "claim id '%s', expected '%s'", claimed, id);
    EXPECT(strlen(token) == 32 && strspn(token, "0123456789abcdef") == 32, "claim token '%s'", token);

    /* A forged token is refused by claim_by_token and complete_dispatch. */
    const char *forged = "00000000000000000000000000000000";
    RustCallStatus refused = {0};
    uniffi_callback_store_ffi_fn_method_store_claim_by_token(uniffi_callback_store_ffi_fn_clone_store(store, &status),
                                                             rust_string(id), rust_string(forged), &refused);
    expect_error(&refused, 3, "INVALID_TRANSITION", id);
    RustCallStatus stale = {0};
    uniffi_callback_store_ffi_fn_method_organization_complete_dispatch(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), rust_string(id), rust_string("sess_c"),
        some_string(forged), &stale);
    expect_error(&stale, 3, "INVALID_TRANSITION", "stale claim");

    /* The real token gives the claim back, then completes the callback. */
    uint64_t again = uniffi_callback_store_ffi_fn_method_store_claim_by_token(
        uniffi_callback_store_ffi_fn_clone_store(store, &status), rust_string(id), rust_string(token), &status);
    EXPECT(status.code == 0 && again != 0, "claim_by_token(real token) failed (status %d)", status.code);
    uniffi_callback_store_ffi_fn_free_claim(again, &status);
    RustBuffer done = uniffi_callback_store_ffi_fn_method_organization_complete_dispatch(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), rust_string(id), rust_string("sess_c"),
        some_string(token), &status);
    EXPECT(status.code == 0, "complete_dispatch(real token) failed (status %d)", status.code);
    if (status.code == 0) {
        /* id, organization_id, source_session_id (None: 0), created_session_id (Some). */
        char session[64] = {0};
        offset = 0;
        read_string(done, &offset, claimed, sizeof claimed);
        read_string(done, &offset, org_id, sizeof org_id);
        EXPECT(done.data[offset] == 0 && done.data[offset + 1] == 1, "session options %d %d", done.data[offset],
               done.data[offset + 1]);
        offset += 2;
        read_string(done, &offset, session, sizeof session);
        EXPECT(strcmp(session, "sess_c") == 0, "created_session_id '%s'", session);
        free_buffer(done);
    }
    uniffi_callback_store_ffi_fn_free_claim(claim, &status);

    /* The change feed: changes(Since.Start (variant 1), 1000, wait 0 s: a
     * u64 of seconds and a u32 of nanoseconds) reads the callback's three
     * events (create, dispatch, complete_dispatch), each a Change: cursor,
     * organization_id, then the CallbackEvent, whose callback_id comes first. */
    Bytes start = {{0}, 0};
    put_i32(&start, 1);
    uint8_t zero_wait[12] = {0};
    RustBuffer feed = uniffi_callback_store_ffi_fn_method_organization_changes(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), to_rust(start.data, start.len), 1000,
        to_rust(zero_wait, sizeof zero_wait), &status);
    EXPECT(status.code == 0, "changes failed (status %d)", status.code);
    if (status.code == 0) {
        char cursor[256] = {0};
        char event_id[128] = {0};
        int32_t count = read_i32(feed.data);
        offset = 4;
        read_string(feed, &offset, cursor, sizeof cursor);
        read_string(feed, &offset, org_id, sizeof org_id);
        read_string(feed, &offset, event_id, sizeof event_id);
        EXPECT(count == 3, "changes found %d events, expected 3", count);
        EXPECT(strlen(cursor) > 0 && strcmp(org_id, "org_c") == 0 && strcmp(event_id, id) == 0,
               "first change: cursor '%s', organization '%s', callback '%s'", cursor, org_id, event_id);
        free_buffer(feed);
    }
    /* A limit of 0 is CallbackStoreError.ValidationError (variant 5). */
    Bytes now_since = {{0}, 0};
    put_i32(&now_since, 2);
    RustCallStatus bad_limit = {0};
    uniffi_callback_store_ffi_fn_method_organization_changes(
        uniffi_callback_store_ffi_fn_clone_organization(org, &status), to_rust(now_since.data, now_since.len), 0,
        to_rust(zero_wait, sizeof zero_wait), &bad_limit);
    expect_error(&bad_limit, 5, "VALIDATION_ERROR", "limit");

    uniffi_callback_store_ffi_fn_free_organization(org, &status);
    uniffi_callback_store_ffi_fn_free_store(store, &status);
    EXPECT(status.code == 0, "free failed");

    printf("C smoke test through the Swift header: %d checksums, contract %u: %s\n", checksums, contract,
           failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
