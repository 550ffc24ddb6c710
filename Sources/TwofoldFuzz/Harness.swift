import TwofoldProtocol

/// The daemon side's fuzz targets (docs/testing.md, "Fuzzing"): what each does with one input, and the
/// properties it checks besides "no crash". Each returns nil, or what was broken (the fuzzer entry traps
/// on it; `Tests/TwofoldProtocolTests/FuzzReplayTests.swift` records it as a failure). Compiled in every
/// build, so the normal build keeps them compiling; only `-DTWOFOLD_FUZZ` makes the executable a fuzzer.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A byte stream through `FrameDecoder`: whole, and split at points taken from the input.
    case frame
    /// JSON through `ControlCodec` as every document the daemon, the CLI and the relay decode.
    case control
    /// A PAYLOAD as the key step's request and response (`KeyRequest`, `KeyResponse`).
    case keystep

    /// The largest input worth trying (libFuzzer's -max_len): a stream of two whole 64 KiB frames; the
    /// JSON bound of a REQUEST; PAYLOAD's bound.
    public var maxLength: Int {
        switch self {
        case .frame: 2 * (FrameCodec.lengthPrefixSize + ProtocolLimits.maxRequestFrame)
        case .control: ProtocolLimits.maxRequestJSON
        case .keystep: FieldTag.payload.bound
        }
    }

    public func run(_ data: [UInt8]) -> String? {
        switch self {
        case .frame: return FrameFuzz.run(data)
        case .control: return ControlFuzz.run(data)
        case .keystep: return KeyStepFuzz.run(data)
        }
    }
}

/// What a decoder gave for a stream: the messages, then how it stopped.
struct DecodeOutcome: Equatable {
    var messages: [Message] = []
    /// nil: it wanted more bytes; else the protocol error it stopped at.
    var error: ProtocolError?
}

enum FrameFuzz {
    static func run(_ data: [UInt8]) -> String? {
        // The daemon's decoder (64 KiB), and the CLI's (RESPONSE up to 4 MiB), each fed everything at once.
        let daemon = decode(data, maxFrame: ProtocolLimits.maxRequestFrame, chunks: [data.count])
        let cli = decode(data, maxFrame: ProtocolLimits.maxResponseFrame, chunks: [data.count])
        if let broken = daemon.broken ?? cli.broken { return broken }
        // The same streams in pieces, as a socket may deliver them: the same messages and the same end.
        var rng = SplitMix64(seed: fnv1a(data))
        for round in 0..<3 {
            var chunks: [Int] = []
            var left = data.count
            while left > 0 {
                let limit = round == 0 ? 1 : (Bool.random(using: &rng) ? 7 : 1 + data.count / 2)
                let size = min(left, Int.random(in: 1...limit, using: &rng))
                chunks.append(size)
                left -= size
            }
            let split = decode(data, maxFrame: ProtocolLimits.maxResponseFrame, chunks: chunks)
            if let broken = split.broken { return broken }
            if split.outcome != cli.outcome {
                return "the stream split into \(chunks.count) pieces decoded otherwise than whole: \(split.outcome) vs \(cli.outcome)"
            }
            let daemonSplit = decode(data, maxFrame: ProtocolLimits.maxRequestFrame, chunks: chunks)
            if daemonSplit.outcome != daemon.outcome {
                return "the stream split into \(chunks.count) pieces decoded otherwise than whole (64 KiB decoder)"
            }
        }
        // Every message decoded is one the codec can encode again, to the same message.
        for message in cli.outcome.messages {
            _ = message.description
            do {
                let again = try FrameCodec.encode(message)
                var decoder = FrameDecoder(maxFrame: ProtocolLimits.maxResponseFrame)
                decoder.append(again)
                guard try decoder.next() == message, try decoder.next() == nil else {
                    return "\(message.type.name) re-encoded decodes to something else"
                }
            } catch {
                return "\(message.type.name) decoded but cannot be encoded again: \(error)"
            }
        }
        return nil
    }

    /// Decodes `data` fed in `chunks` (sizes), taking messages after each piece as a connection does.
    static func decode(_ data: [UInt8], maxFrame: Int, chunks: [Int]) -> (outcome: DecodeOutcome, broken: String?) {
        var decoder = FrameDecoder(maxFrame: maxFrame)
        var outcome = DecodeOutcome()
        var offset = 0
        feeding: for size in chunks {
            data.withUnsafeBytes { decoder.append(UnsafeRawBufferPointer(rebasing: $0[offset ..< offset + size])) }
            offset += size
            do {
                while let message = try decoder.next() { outcome.messages.append(message) }
            } catch let error as ProtocolError {
                outcome.error = error
                break feeding
            } catch {
                return (outcome, "FrameDecoder threw something other than a ProtocolError: \(error)")
            }
        }
        if let error = outcome.error {
            // A failed decoder stays failed, with the same error.
            decoder.append([0, 0, 0, 2, 1, MessageType.info.rawValue])
            do {
                _ = try decoder.next()
                return (outcome, "FrameDecoder decoded again after \(error)")
            } catch let again as ProtocolError where again == error {
            } catch {
                return (outcome, "FrameDecoder failed with \(error) after \(outcome.error!)")
            }
            _ = error.description
        } else if decoder.bufferedByteCount > 0 {
            // Short of a frame: the bytes kept are what remains after the last whole frame, no more.
            let consumed = outcome.messages.count
            if decoder.bufferedByteCount > data.count || (consumed == 0 && decoder.bufferedByteCount != data.count) {
                return (outcome, "FrameDecoder holds \(decoder.bufferedByteCount) bytes of a \(data.count)-byte stream")
            }
        }
        return (outcome, nil)
    }
}

enum ControlFuzz {
    static func run(_ data: [UInt8]) -> String? {
        // The daemon decodes requests (ControlService, the relay), the CLI and the relay responses, the
        // tier RELAY's context, the stored policy document; the delivery service its request, the daemon
        // its answer.
        if let broken = roundTrip(ControlRequest.self, data, asRequest: true) { return broken }
        if let broken = roundTrip(ControlResponse.self, data, asRequest: false) { return broken }
        if let broken = roundTrip(RelayContext.self, data, asRequest: true) { return broken }
        if let broken = roundTrip(PolicyDocument.self, data, asRequest: true) { return broken }
        if let broken = roundTrip(DeliveryRequest.self, data, asRequest: true) { return broken }
        if let broken = roundTrip(DeliveryResponse.self, data, asRequest: false) { return broken }
        // Through the message, as ControlCodec.decode sees it.
        for message in [Message.request(data), .response(data), .relay(data)] {
            _ = try? ControlCodec.decode(ControlRequest.self, from: message)
        }
        return nil
    }

    /// A document that decodes encodes again and decodes to the same value; a refusal is a
    /// ControlCodecError.invalidJSON whose text never quotes the input.
    static func roundTrip<T: Codable & Equatable>(_ type: T.Type, _ data: [UInt8], asRequest: Bool) -> String? {
        let value: T
        do {
            value = try ControlCodec.decodeJSON(type, from: data)
        } catch ControlCodecError.invalidJSON(let what) {
            if what.count > 200 { return "\(T.self): an error text of \(what.count) characters" }
            return nil
        } catch {
            return "\(T.self): decodeJSON threw \(error), not invalidJSON"
        }
        let message: Message
        do {
            message = asRequest ? try ControlCodec.encodeRequest(value) : try ControlCodec.encodeResponse(value)
        } catch ProtocolError.fieldTooLong {
            return nil // re-encoded past the REQUEST bound (the input used shorter spellings): refused, not lost
        } catch {
            return "\(T.self) decoded but does not encode: \(error)"
        }
        do {
            let again = try ControlCodec.decode(type, from: message)
            return again == value ? nil : "\(T.self) re-encoded decodes to another value"
        } catch {
            return "\(T.self) re-encoded does not decode: \(error)"
        }
    }
}

enum KeyStepFuzz {
    static func run(_ data: [UInt8]) -> String? {
        // The strict parsers accept only the canonical encoding of what they return.
        if let request = try? KeyRequest.decode(data), data.count <= FieldTag.payload.bound {
            guard request.encoded() == data else { return "an accepted key request is not the encoding of what was parsed" }
        }
        if let response = try? KeyResponse.decode(data) {
            guard response.encoded() == data else { return "an accepted key response is not the encoding of what was parsed" }
            _ = response.status.description
        }
        return nil
    }
}

/// FNV-1a: the split points of a stream are a function of its bytes, so a crash reproduces from its file.
func fnv1a(_ data: [UInt8]) -> UInt64 {
    data.reduce(0xcbf2_9ce4_8422_2325) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
}

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
