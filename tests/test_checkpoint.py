"""Signed checkpoints: published signed-note vectors, a checkpoint golden vector, the
round trip, and every way a note is refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from greenpass.checkpoint import (
    MAX_BODY_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    format_body,
    key_id,
    open_checkpoint,
    open_note,
    parse_body,
    parse_verifier_key,
    sign,
    sign_note,
    verifier_key,
)
from greenpass.errors import ConfigError, ProtocolError
from greenpass.merkle import EMPTY_ROOT, leaf_hash

# --- golang.org/x/mod, sumdb/note/note_test.go at commit
# fe2ec04f7c3c3aa6fad97631aafcff6e49e2d1db (TestNewVerifier, TestSign, TestOpen).
# Its private key string is "PRIVATE+KEY+PeterNeumann+c74f20a3+" + base64(0x01 ‖ seed).
PETER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngo"
    "tpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox3"
    "3WWd1RvMc+QQ=\n"
)

# --- C2SP, signed-note.md at commit 5ba5ee830903e91240fc6f9f3a7a9293d49e69c9 ("Example").
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n"
    "\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRK"
    "uwHjG1Yu72IneyaQM=\n"
)

# --- Checkpoint golden vector. The body is the example in C2SP tlog-checkpoint.md
# (same commit); its log key is not published, so the signature line was computed by
# hand from the specs with Peter's seed above under the name of that origin (key ID
# = SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], Ed25519 over the body), and
# `test_golden_checkpoint_follows_the_spec` redoes that computation without this module.
ORIGIN = "example.com/behind-the-sofa"
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LOG_SIG = (  # the spec's own signature, by a key we do not have
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcy"
    "v2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
GOLDEN_VKEY = "example.com/behind-the-sofa+bed5581b+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GOLDEN_NOTE = (
    SPEC_BODY + "\n— example.com/behind-the-sofa vtVYG5/3L9NHv4CxP0XTzEcSuWnwY/BYfHU7NnQPhQyrEuH+"
    "AqeHvF+HXNvu8ujR9RQHE17Tcer4sDE9uIi/Yx6ihwc=\n"
)

PETER = Ed25519PrivateKey.from_private_bytes(PETER_SEED)
LOG_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"test log key").digest())
LOG = "greenpass.example/log"
CP = Checkpoint(LOG, 1234, leaf_hash(b"x"))


def refused(note: bytes | str, name: str = LOG, key: Ed25519PrivateKey = LOG_KEY) -> str:
    raw = note.encode() if isinstance(note, str) else note
    with pytest.raises(ProtocolError) as info:
        open_checkpoint(raw, name, key.public_key(), origin=LOG)
    assert info.value.code == "rejected"
    return str(info.value)


# --- Published vectors ---


def test_go_sign_vector() -> None:
    assert verifier_key("PeterNeumann", PETER.public_key()) == PETER_VKEY
    assert key_id("PeterNeumann", PETER.public_key()).hex() == "c74f20a3"
    note = sign_note(GO_TEXT.encode(), "PeterNeumann", PETER)
    assert note.decode() == GO_TEXT + "\n" + PETER_SIG


def test_go_open_vectors() -> None:
    peter_name, peter = parse_verifier_key(PETER_VKEY)
    enoch_name, enoch = parse_verifier_key(ENOCH_VKEY)
    both = (GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    # Enoch's signature is another key's: ignored when checking Peter's, and good itself.
    assert open_note(both, peter_name, peter) == GO_TEXT.encode()
    assert open_note(both, enoch_name, enoch) == GO_TEXT.encode()

    bad_signature = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    bad_messages = [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT + "\n" + "— Bad Name " + PETER_SIG.rsplit(" ", maxsplit=1)[-1],
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + PETER_SIG * 101,
        bad_signature,
    ]
    for message in bad_messages:
        with pytest.raises(ProtocolError):
            open_note(message.encode(), peter_name, peter)
    with pytest.raises(ProtocolError):
        open_note(b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode(), peter_name, peter)
    # A signature by Peter under another name (or another key ID) is not Peter's.
    with pytest.raises(ProtocolError, match="not signed"):
        open_note(both.replace(b"PeterNeumann", b"CarmenSandiego"), peter_name, peter)


def test_go_verifier_key_manglings_are_refused() -> None:
    """TestNewVerifier: every proper substring and every one-byte change of the key."""
    assert parse_verifier_key(PETER_VKEY)[0] == "PeterNeumann"
    for i in range(len(PETER_VKEY) + 1):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(ConfigError):
                    parse_verifier_key(PETER_VKEY[i:j])
    for i, char in enumerate(PETER_VKEY):
        with pytest.raises(ConfigError):
            parse_verifier_key(PETER_VKEY[:i] + chr(ord(char) + 1) + PETER_VKEY[i + 1 :])
    for other in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(ConfigError):
            parse_verifier_key(other)


def test_c2sp_signed_note_example() -> None:
    name, key = parse_verifier_key(C2SP_VKEY)
    assert open_note(C2SP_NOTE.encode(), name, key) == b"This is an example message.\n"
    assert verifier_key(name, key) == C2SP_VKEY


def test_c2sp_checkpoint_body() -> None:
    cp = parse_body(SPEC_BODY.encode(), ORIGIN)
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert format_body(cp) == SPEC_BODY.encode()


def test_golden_checkpoint() -> None:
    name, key = parse_verifier_key(GOLDEN_VKEY)
    cp = parse_body(SPEC_BODY.encode(), ORIGIN)
    assert sign(cp, ORIGIN, PETER) == GOLDEN_NOTE.encode()
    assert open_checkpoint(GOLDEN_NOTE.encode(), name, key, origin=ORIGIN) == cp
    # With the spec's own log signature beside ours: that one is another key's, ignored.
    cosigned = (GOLDEN_NOTE + SPEC_LOG_SIG).encode()
    assert open_checkpoint(cosigned, name, key, origin=ORIGIN) == cp
    # Alone, the spec's signature is not by our key.
    with pytest.raises(ProtocolError, match="not signed"):
        open_checkpoint((SPEC_BODY + "\n" + SPEC_LOG_SIG).encode(), name, key, origin=ORIGIN)


def test_golden_checkpoint_follows_the_spec() -> None:
    """The golden signature line, assembled from the spec's words alone."""
    public = PETER.public_key().public_bytes_raw()
    kid = hashlib.sha256(ORIGIN.encode() + b"\n" + b"\x01" + public).digest()[:4]
    signature = PETER.sign(SPEC_BODY.encode())
    line = "\u2014 " + ORIGIN + " " + base64.b64encode(kid + signature).decode() + "\n"
    assert SPEC_BODY + "\n" + line == GOLDEN_NOTE
    vkey_material = base64.b64encode(b"\x01" + public).decode()
    assert f"{ORIGIN}+{kid.hex()}+{vkey_material}" == GOLDEN_VKEY


# --- Round trip and refusals ---


def test_round_trip() -> None:
    for cp in (CP, Checkpoint(LOG, 0, EMPTY_ROOT), Checkpoint(LOG, 2**64 - 1, EMPTY_ROOT)):
        note = sign(cp, LOG, LOG_KEY)
        assert open_checkpoint(note, LOG, LOG_KEY.public_key(), origin=LOG) == cp
    vkey = verifier_key(LOG, LOG_KEY.public_key())
    assert vkey.count("+") > 2  # this key's base64 has a '+' of its own
    name, key = parse_verifier_key(vkey)
    assert open_checkpoint(sign(CP, LOG, LOG_KEY), name, key, origin=LOG) == CP


def test_extension_lines_are_kept_and_signed() -> None:
    cp = Checkpoint(LOG, 5, EMPTY_ROOT, ("ext one", "ext two"))
    note = sign(cp, LOG, LOG_KEY)
    assert open_checkpoint(note, LOG, LOG_KEY.public_key(), origin=LOG) == cp
    assert format_body(cp).endswith(b"ext one\next two\n")


def test_other_keys_signatures_are_ignored() -> None:
    mine = sign(CP, LOG, LOG_KEY).decode()
    witness = sign(CP, "witness.example/w1", PETER).decode().split("\n\n")[1]
    impostor = sign(CP, LOG, PETER).decode().split("\n\n")[1]  # same name, other key ID
    for note in (mine + witness, mine + impostor, mine + witness + impostor + witness):
        assert open_checkpoint(note.encode(), LOG, LOG_KEY.public_key(), origin=LOG) == CP


def test_resigned_by_another_key_is_refused() -> None:
    assert "not signed" in refused(sign(CP, LOG, PETER))
    assert "not signed" in refused(sign(CP, "other.example/log", LOG_KEY))


def test_bad_signature_by_our_key_is_refused() -> None:
    note = sign(CP, LOG, LOG_KEY).decode()
    body, signature_line = note.split("\n\n")
    prefix, _, encoded = signature_line.rstrip("\n").rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    forged = f"{body}\n\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    assert "bad signature" in refused(forged)
    short = f"{body}\n\n{prefix} {base64.b64encode(bytes(raw[:40])).decode()}\n"
    assert "bad signature" in refused(short)
    # Alongside a good one, a bad one by the same key still refuses the note.
    assert "bad signature" in refused(note + forged.split("\n\n")[1])


def test_changed_body_is_refused() -> None:
    note = sign(CP, LOG, LOG_KEY).decode()
    assert "bad signature" in refused(note.replace("1234", "1235"))
    root_line = base64.b64encode(CP.root_hash).decode()
    other_root = base64.b64encode(EMPTY_ROOT).decode()
    assert "bad signature" in refused(note.replace(root_line, other_root))


def test_whitespace_and_crlf_tampering_is_refused() -> None:
    note = sign(CP, LOG, LOG_KEY).decode()
    tampered = [
        note.replace("\n", "\r\n"),
        note.replace("\n\n", "\r\n\n"),
        note.replace("1234\n", "1234 \n"),
        note.replace("1234\n", " 1234\n"),
        note.replace("1234\n", "1234\t\n"),
        note.replace(f"{LOG}\n", f"{LOG}\n\n", 1),
        "\n" + note,
        note + "\n",
        note[:-1],
        note.replace("\u2014 ", "\u2014  "),
        note.replace("\u2014 ", "- "),
        note.replace("=\n", "= \n"),
    ]
    for bad in tampered:
        assert bad != note
        refused(bad)


def test_malformed_notes_are_refused() -> None:
    note = sign(CP, LOG, LOG_KEY)
    assert "UTF-8" in refused(note.replace(b"1234", b"12\xff4"))
    assert "no blank line" in refused(format_body(CP))
    assert "signature lines" in refused(note + b"trailing")
    too_many = note + note.split(b"\n\n")[1] * MAX_SIGNATURES
    assert f"more than {MAX_SIGNATURES}" in refused(too_many)
    long_origin = "a" * MAX_BODY_BYTES
    with pytest.raises(ValueError, match="over"):
        sign(Checkpoint(long_origin, 1, EMPTY_ROOT), LOG, LOG_KEY)
    huge_body = sign_note(f"{long_origin}\n1\n".encode(), LOG, LOG_KEY)
    assert "body over" in refused(huge_body)
    assert "note over" in refused(note + b"x" * 10_000)


def signed_body(body: str) -> bytes:
    return sign_note(body.encode(), LOG, LOG_KEY)


def test_checkpoint_bodies_are_checked_after_the_signature() -> None:
    root = base64.b64encode(CP.root_hash).decode()
    assert "origin" in refused(signed_body(f"other.example/log\n1\n{root}\n"))
    assert "origin" in refused(signed_body(f"{LOG}/\n1\n{root}\n"))
    for size in ("01", "00", "-1", "+1", "1.0", "1e3", " 1", "١٢", "0x10", str(2**64), "1" * 30):
        assert "size" in refused(signed_body(f"{LOG}\n{size}\n{root}\n"))
    short_root = base64.b64encode(CP.root_hash[:31]).decode()
    long_root = base64.b64encode(CP.root_hash + b"\x00").decode()
    for bad_root in (short_root, long_root, root.rstrip("="), root.replace("=", "A"), "!" * 44):
        assert "root hash" in refused(signed_body(f"{LOG}\n1\n{bad_root}\n"))
    assert "lines" in refused(signed_body(f"{LOG}\n1\n"))
    assert "lines" in refused(signed_body(f"{LOG}\n\n{root}\n"))
    assert "lines" in refused(signed_body(f"{LOG}\n1\n{root}\n\nextension\n"))


def test_non_canonical_base64_is_refused() -> None:
    root = base64.b64encode(CP.root_hash).decode()
    # 32 bytes leave 2 spare bits in the last character; setting one spells the same
    # bytes differently, which a signed text must not allow.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet[alphabet.index(root[-2]) | 1]
    other_spelling = root[:-2] + last + "="
    assert other_spelling != root
    assert base64.b64decode(other_spelling) == CP.root_hash
    assert "root hash" in refused(signed_body(f"{LOG}\n1\n{other_spelling}\n"))


def test_signing_refuses_what_it_could_not_read_back() -> None:
    for cp in (
        Checkpoint("", 1, EMPTY_ROOT),
        Checkpoint("a\nb", 1, EMPTY_ROOT),
        Checkpoint(LOG, -1, EMPTY_ROOT),
        Checkpoint(LOG, 1, b"short"),
        Checkpoint(LOG, 1, EMPTY_ROOT, ("",)),
        Checkpoint(LOG, 1, EMPTY_ROOT, ("a\rb",)),
    ):
        with pytest.raises(ValueError):
            sign(cp, LOG, LOG_KEY)
    for name in ("", "has space", "has+plus"):
        with pytest.raises(ValueError):
            sign(CP, name, LOG_KEY)
        with pytest.raises(ValueError):
            verifier_key(name, LOG_KEY.public_key())
