"""Phone numbers found in message texts: the digit count that lets most texts skip
libphonenumber's matcher never skips a number it would have found."""

from __future__ import annotations

import phonenumbers
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.identity import _fewest_digits, phones_in

REGIONS = ["RU", "DE", "NU", "US", "GB", "IR"]
DIGITS = "0123456789" + "٠١٢٣٤٥٦٧٨٩" + "０１２３４５６７８９"  # ASCII, Arabic-Indic, fullwidth
TEXT = st.text(alphabet=DIGITS + "+-()./ xX#abcdefghijklmnopqrstuvwxyzАБВ", max_size=40)


def matcher(text: str, region: str) -> list[str]:
    """What libphonenumber finds, unfiltered (E.164, in order, distinct)."""
    found: list[str] = []
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
    return found[:3]


def test_the_fewest_digits_of_a_valid_number() -> None:
    assert _fewest_digits() == 4
    # Niue's numbers are four digits: the shortest, and found as such.
    assert phones_in("call 7012 now", "NU") == ["+6837012"]
    assert phones_in("call 701 now", "NU") == []


@settings(max_examples=400)
@given(TEXT, st.sampled_from(REGIONS))
@example("+683 7012", "RU")
@example("8 (916) 123-45-67", "RU")
@example("+7 ٩١٦ ١٢٣ ٤٥ ٦٧", "RU")
def test_the_digit_count_skips_only_texts_without_a_number(text: str, region: str) -> None:
    assert phones_in(text, region) == matcher(text, region)
