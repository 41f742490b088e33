import SettledCore

enum SettledCoreMoney {
    /// Fen as yuan text, `-1.05`, for messages.
    static func yuan(_ fen: Int64) -> String { Money(fen: fen).yuanString(grouped: false) }
}
