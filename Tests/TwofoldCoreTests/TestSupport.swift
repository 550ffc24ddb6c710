import TwofoldCore
import TwofoldCrypto
import TwofoldTestSupport

/// The seeded generator the tests share (TwofoldTestSupport), by the name these tests use.
typealias SeededGenerator = TwofoldTestSupport.SeededGenerator

func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] })
}

func ascii(_ text: String) -> SecretBytes { SecretBytes(Array(text.utf8)) }
