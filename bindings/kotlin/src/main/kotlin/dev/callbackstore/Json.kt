package dev.callbackstore

/**
 * A small JSON reader and writer, so that `metadata` / `pipeline_config` are
 * plain Kotlin values (`Map<String, Any?>` of String, Long, Double, Boolean,
 * null, List and Map) without a JSON library. `uniffi.toml` names
 * [parseObject] and [encodeObject] as the converters of the `JsonObject`
 * custom type.
 */
object Json {
    /** Marks a value that cannot be JSON; the store reports the reason as a
     * VALIDATION_ERROR naming the field. */
    private const val REFUSED = '\u0000'

    /** The lift of `JsonObject`: the store always hands over an object. */
    @JvmStatic
    fun parseObject(text: String): Map<String, Any?> {
        val value = parse(text)
        require(value is Map<*, *>) { "not a JSON object: $text" }
        @Suppress("UNCHECKED_CAST")
        return value as Map<String, Any?>
    }

    /** The lower of `JsonObject`: never throws; a value that is not JSON
     * becomes a refusal that the store reports as VALIDATION_ERROR. */
    @JvmStatic
    fun encodeObject(value: Map<String, Any?>): String =
        try {
            encode(value)
        } catch (e: IllegalArgumentException) {
            REFUSED + "must be JSON (${e.message})"
        }

    /** JSON text of a value: Map (string keys), Iterable, Array, String,
     * Number, Boolean or null; anything else is an IllegalArgumentException. */
    @JvmStatic
    fun encode(value: Any?): String = StringBuilder().also { write(it, value, 0) }.toString()

    /** The value of JSON text: objects are LinkedHashMaps (order kept),
     * integers Long (Double when out of range), other numbers Double. */
    @JvmStatic
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value(0)
        reader.skipSpace()
        require(reader.pos == text.length) { "trailing text at ${reader.pos}" }
        return value
    }

    private const val MAX_DEPTH = 512

    private fun write(out: StringBuilder, value: Any?, depth: Int) {
        require(depth < MAX_DEPTH) { "nested deeper than $MAX_DEPTH levels" }
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(value)
            is String -> writeString(out, value)
            is Double, is Float -> {
                val d = (value as Number).toDouble()
                require(d.isFinite()) { "$d is not a JSON number" }
                out.append(d.toString())
            }
            is Number -> out.append(value.toString())
            is Map<*, *> -> {
                out.append('{')
                var first = true
                for ((k, v) in value) {
                    require(k is String) { "object keys must be strings, got ${k?.let { it::class.simpleName }}" }
                    if (!first) out.append(',')
                    first = false
                    writeString(out, k)
                    out.append(':')
                    write(out, v, depth + 1)
                }
                out.append('}')
            }
            is Iterable<*> -> writeArray(out, value, depth)
            is Array<*> -> writeArray(out, value.asIterable(), depth)
            else -> throw IllegalArgumentException("a ${value::class.qualifiedName} is not a JSON value")
        }
    }

    private fun writeArray(out: StringBuilder, items: Iterable<*>, depth: Int) {
        out.append('[')
        var first = true
        for (item in items) {
            if (!first) out.append(',')
            first = false
            write(out, item, depth + 1)
        }
        out.append(']')
    }

    private fun writeString(out: StringBuilder, s: String) {
        out.append('"')
        for (c in s) {
            when {
                c == '"' -> out.append("\\\"")
                c == '\\' -> out.append("\\\\")
                c == '\n' -> out.append("\\n")
                c == '\r' -> out.append("\\r")
                c == '\t' -> out.append("\\t")
                c < ' ' -> out.append("\\u%04x".format(c.code))
                else -> out.append(c)
            }
        }
        out.append('"')
    }

    private class Reader(val text: String) {
        var pos = 0

        fun skipSpace() {
            while (pos < text.length && text[pos] in " \t\r\n") pos++
        }

        private fun fail(what: String): Nothing =
            throw IllegalArgumentException("bad JSON at $pos: $what")

        private fun expect(word: String) {
            if (!text.startsWith(word, pos)) fail("expected $word")
            pos += word.length
        }

        fun value(depth: Int): Any? {
            if (depth >= MAX_DEPTH) fail("nested too deep")
            skipSpace()
            if (pos >= text.length) fail("unexpected end")
            return when (text[pos]) {
                '{' -> obj(depth)
                '[' -> array(depth)
                '"' -> string()
                't' -> true.also { expect("true") }
                'f' -> false.also { expect("false") }
                'n' -> null.also { expect("null") }
                else -> number()
            }
        }

        private fun obj(depth: Int): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (text.getOrNull(pos) == '}') return map.also { pos++ }
            while (true) {
                skipSpace()
                if (text.getOrNull(pos) != '"') fail("expected a key")
                val key = string()
                skipSpace()
                expect(":")
                map[key] = value(depth + 1)
                skipSpace()
                when (text.getOrNull(pos)) {
                    ',' -> pos++
                    '}' -> return map.also { pos++ }
                    else -> fail("expected , or }")
                }
            }
        }

        private fun array(depth: Int): List<Any?> {
            val list = ArrayList<Any?>()
            pos++
            skipSpace()
            if (text.getOrNull(pos) == ']') return list.also { pos++ }
            while (true) {
                list.add(value(depth + 1))
                skipSpace()
                when (text.getOrNull(pos)) {
                    ',' -> pos++
                    ']' -> return list.also { pos++ }
                    else -> fail("expected , or ]")
                }
            }
        }

        private fun string(): String {
            val out = StringBuilder()
            pos++
            while (true) {
                if (pos >= text.length) fail("unterminated string")
                val c = text[pos++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        if (pos >= text.length) fail("unterminated escape")
                        when (val e = text[pos++]) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (pos + 4 > text.length) fail("short \\u escape")
                                out.append(text.substring(pos, pos + 4).toInt(16).toChar())
                                pos += 4
                            }
                            else -> fail("bad escape \\$e")
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Number {
            val start = pos
            while (pos < text.length && text[pos] in "+-0123456789.eE") pos++
            val literal = text.substring(start, pos)
            if (literal.isEmpty()) fail("unexpected ${text[pos]}")
            val isInteger = literal.none { it in ".eE" }
            return (if (isInteger) literal.toLongOrNull() else null)
                ?: literal.toDoubleOrNull()
                ?: fail("bad number $literal")
        }
    }
}
