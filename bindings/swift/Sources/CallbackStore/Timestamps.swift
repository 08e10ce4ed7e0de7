// The converters of the `Timestamp` custom type (see uniffi.toml): the store
// hands over RFC 3339 text in UTC (`2019-08-24T14:15:22Z`, with 0, 3 or 6
// fractional digits) and parses what it receives by its own rules, so a
// Date it cannot store is a CallbackStoreError.ValidationError naming the
// field.

import Foundation

/// RFC 3339 text from the store as a Date (microseconds kept as far as a
/// Double allows).
public func callbackStoreDate(rfc3339 text: String) -> Date {
    var whole = text
    var fraction = 0.0
    if let dot = text.firstIndex(of: "."), let zulu = text.lastIndex(of: "Z"), dot < zulu {
        fraction = Double("0" + String(text[dot..<zulu])) ?? 0
        whole = String(text[..<dot]) + "Z"
    }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let date = formatter.date(from: whole) else {
        // The store only hands over timestamps it wrote itself.
        return Date(timeIntervalSince1970: 0)
    }
    return date.addingTimeInterval(fraction)
}

/// A Date as RFC 3339 text in UTC with microseconds; a Date that is not a
/// finite point in time is refused (the store reports the reason).
public func callbackStoreRfc3339(date: Date) -> String {
    let interval = date.timeIntervalSince1970
    guard interval.isFinite else {
        return "\u{0}must be a finite point in time"
    }
    var seconds = interval.rounded(.down)
    var micros = ((interval - seconds) * 1_000_000).rounded()
    if micros >= 1_000_000 {
        micros -= 1_000_000
        seconds += 1
    }
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    let text = formatter.string(from: Date(timeIntervalSince1970: seconds))
    if micros == 0 {
        return text
    }
    return String(text.dropLast()) + String(format: ".%06ldZ", Int(micros))
}
