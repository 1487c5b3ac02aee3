"""What a user may type as the domain (and --target), and the one-line reason when it cannot be a custom domain."""

from __future__ import annotations

import dns.name
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from kdiag.names import InvalidName, NormalizedName, normalize_domain, normalize_target

# (typed, checked name, words a note on stderr must contain; None: no note)
ACCEPTED = [
    ("my.example.com", "my.example.com", None),
    ("My.Example.COM", "my.example.com", None),
    ("my.example.com.", "my.example.com", None),
    ("  my.example.com\n", "my.example.com", None),
    ("https://my.example.com/path", "my.example.com", ["looks like a URL", "my.example.com"]),
    ("HTTPS://My.Example.com:8443/a/b?q=1#frag", "my.example.com", ["looks like a URL"]),
    ("https://user:secret@my.example.com:443/", "my.example.com", ["looks like a URL"]),
    ("http://my.example.com.", "my.example.com", ["looks like a URL"]),
    ("my.example.com:443", "my.example.com", ["ignoring the port"]),
    ("my.example.com/health", "my.example.com", ["ignoring the path"]),
    ("straße.de", "xn--strae-oqa.de", ["A-label", "straße.de"]),  # UTS-46 non-transitional: ß stays ß
    ("faß.de", "xn--fa-hia.de", ["A-label"]),  # not "fass.de" (IDNA 2003 / transitional)
    ("Bücher.Example", "xn--bcher-kva.example", ["A-label"]),
    ("ｅｘａｍｐｌｅ.com", "example.com", ["A-label"]),  # full-width letters map to ASCII
    ("https://bücher.example/x", "xn--bcher-kva.example", ["looks like a URL"]),
    ("xn--strae-oqa.de", "xn--strae-oqa.de", None),
    ("XN--BCHER-KVA.example", "xn--bcher-kva.example", None),
    ("a.b", "a.b", None),
    ("123.example.com", "123.example.com", None),
    ("a-b--c.example.com", "a-b--c.example.com", None),  # '--' is reserved only in positions 3-4
    ("a" * 63 + ".example.com", "a" * 63 + ".example.com", None),
    (".".join(["a" * 61] * 4) + ".com", ".".join(["a" * 61] * 4) + ".com", None),  # 251 octets
]

# (typed, words the one-line message must contain)
REJECTED = [
    ("", ["empty"]),
    ("   ", ["empty"]),
    (".", ["no domain name"]),
    ("my..example.com", ["empty label"]),
    ("my.example.com..", ["empty label"]),
    (".my.example.com", ["empty label"]),
    ("localhost", ["single label", "my.example.com"]),
    ("a" * 64 + ".example.com", ["64 characters", "at most 63"]),
    (".".join(["a" * 62] * 4) + ".com", ["255 characters", "at most 253"]),
    ("my_host.example.com", ["invalid characters", "'_'"]),
    ("my host.example.com", ["invalid characters", "' '"]),
    ("a*.example.com", ["invalid characters", "'*'"]),
    ('my"x.example.com', ["invalid characters"]),
    ("-my.example.com", ["'-my'", "hyphen"]),
    ("my-.example.com", ["'my-'", "hyphen"]),
    ("ab--cd.example.com", ["'ab--cd'", "reserved"]),
    ("xn--zz.example.com", ["malformed punycode", "xn--zz"]),
    ("xn--.example.com", ["malformed punycode"]),
    ("xn--abc-.example.com", ["malformed punycode"]),
    ("xn--ls8h.la", ["malformed punycode"]),  # decodes to an emoji, which IDNA 2008 forbids
    ("xn--fa-hia.xn--zzzz.de", ["malformed punycode", "xn--zzzz"]),
    ("💩.la", ["not a valid internationalised domain name"]),
    ("192.0.2.1", ["IP address"]),
    ("192.0.2.1.", ["IP address"]),
    ("2001:db8::1", ["IP address"]),
    ("[2001:db8::1]", ["IP address"]),
    ("https://192.0.2.1/", ["IP address"]),
    ("http://[2001:db8::1]:8080/", ["IP address"]),
    ("example.123", ["numeric label"]),
    ("*.example.com", ["wildcard", "DNS-01"]),
    ("https://*.example.com/", ["wildcard"]),
    ("https://", ["without a host"]),
    ("https://my.example.com:99999/", ["not a valid URL"]),
]


@pytest.mark.parametrize(("typed", "name", "note_words"), ACCEPTED, ids=[a[0][:40] for a in ACCEPTED])
def test_accepted_names(typed, name, note_words):
    result = normalize_domain(typed)
    assert result.name == name
    if note_words is None:
        assert result.notes == ()
    else:
        assert result.notes and all("\n" not in n for n in result.notes)
        for word in note_words:
            assert word in " ".join(result.notes)


@pytest.mark.parametrize(("typed", "words"), REJECTED, ids=[r[0][:40] or "empty" for r in REJECTED])
def test_rejected_names_say_why_in_one_line(typed, words):
    with pytest.raises(InvalidName) as info:
        normalize_domain(typed)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    assert len(message) < 300
    for word in words:
        assert word in message


def test_straße_is_converted_non_transitionally():
    # IDNA 2003 and UTS-46 transitional processing map ß to "ss": a different domain, maybe someone else's.
    assert normalize_domain("straße.de").name == "xn--strae-oqa.de"
    assert normalize_domain("straße.de").name != normalize_domain("strasse.de").name


def test_a_punycode_label_must_be_in_canonical_lowercase_form_after_lowercasing():
    # Upper-case A-labels are the same label (DNS is case-insensitive), so they are accepted and lowercased.
    assert normalize_domain("XN--STRAE-OQA.DE").name == "xn--strae-oqa.de"


def test_a_url_note_names_what_is_checked_and_never_the_password():
    # stderr ends up in CI logs: a password pasted as part of a URL must not be echoed there.
    (note,) = normalize_domain("https://user:s3cret@my.example.com/x").notes
    assert "my.example.com" in note
    assert "s3cret" not in note and "user" not in note


@pytest.mark.parametrize(("typed", "name"), [
    ("9e454bcfec.kongcloud.dev", "9e454bcfec.kongcloud.dev"),
    ("9e454bcfec.kongcloud.dev.", "9e454bcfec.kongcloud.dev"),
    ("9E454BCFEC.KongCloud.dev", "9e454bcfec.kongcloud.dev"),
])
def test_target_with_or_without_trailing_dot(typed, name):
    assert normalize_target(typed) == name


@pytest.mark.parametrize(("typed", "words"), [
    ("https://9e454bcfec.kongcloud.dev/", ["looks like a URL", "9e454bcfec.kongcloud.dev"]),
    ("9e454bcfec.kongcloud.dev/x", ["looks like a URL"]),
    ("192.0.2.1", ["IP address"]),
    ("", ["empty"]),
    ("*.kongcloud.dev", ["wildcard"]),
])
def test_bad_targets(typed, words):
    with pytest.raises(InvalidName) as info:
        normalize_target(typed)
    for word in words:
        assert word in str(info.value)


# --- properties ------------------------------------------------------------------------------------------------

LABEL_CHARS = st.sampled_from(list("abcxyzABZ019-_ßüéЖ中.*") + ["xn--", "ｅ", "\u200d", "\u0301", " "])
DOMAINISH = st.lists(LABEL_CHARS, min_size=1, max_size=40).map("".join)
PASTED = st.builds(lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
                   st.sampled_from(["", "", "https://", "http://user@"]),
                   DOMAINISH,
                   st.sampled_from(["", "", ":443", ":x"]),
                   st.sampled_from(["", "", "/", "/path?q=1", "."]))


def check_normalised(result: NormalizedName) -> None:
    name = result.name
    assert name == name.lower() and name.isascii()
    assert not name.endswith(".") and 0 < len(name) <= 253
    assert all(0 < len(label) <= 63 for label in name.split("."))
    parsed = dns.name.from_text(name)
    assert parsed.to_text(omit_final_dot=True) == name  # nothing in it needs escaping
    assert len(parsed.labels) >= 3  # at least two labels plus the root


@given(st.one_of(PASTED, st.text(max_size=60)))
@example("https://Straße.example:443/x")
@example("xn--strae-oqa.de.")
@example("[::1]")
@example("http://[::1")
@example("a\nb.com")
def test_normalisation_is_idempotent_and_its_output_is_a_dns_name(typed):
    try:
        first = normalize_domain(typed)
    except InvalidName as exc:
        assert str(exc)  # a reason, never an empty message (the CLI folds it onto one line)
        return
    check_normalised(first)
    again = normalize_domain(first.name)
    assert again == NormalizedName(first.name, ())
