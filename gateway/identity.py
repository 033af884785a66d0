"""Phones and e-mails as contact keys: one written form per real number or address.

A person types ``8 (916) 123-45-67`` in one place and ``+7 916 123 45 67`` in another;
deduplication only works when both become ``+79161234567`` (E.164). Numbers are parsed
with ``phonenumbers`` (Google's libphonenumber) in the configured default region;
e-mails are checked with ``email-validator`` (syntax only, no DNS) and lower-cased.
"""

from __future__ import annotations

import re

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from gateway.errors import GatewayError


class InvalidIdentity(GatewayError):
    """A phone or e-mail that cannot be a real one; the message says why."""


def normalise_phone(raw: str, region: str) -> str:
    """``raw`` as E.164 (``+79161234567``); a number without ``+`` is read as a number
    of ``region`` (ISO 3166 code, e.g. ``RU``: ``8 916 …`` is a Russian trunk prefix)."""
    text = raw.strip()
    if not any(ch.isdigit() for ch in text):
        raise InvalidIdentity(f"{raw!r} is not a phone number.")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"{raw!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentity(f"{raw!r} is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    """``raw`` checked and lower-cased (``Ivan@Mail.RU`` → ``ivan@mail.ru``)."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentity(f"{raw.strip()!r} is not an e-mail address: {exc}") from None
    return checked.normalized.lower()


def _fewest_digits() -> int:
    """The fewest digits a valid number has without its country code (4: Germany,
    Niue…), from the library's metadata, for every region and non-geographic code."""
    util = phonenumbers.phonenumberutil
    every = [phonenumbers.PhoneMetadata.metadata_for_region(r) for r in util.SUPPORTED_REGIONS]
    every += [
        phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
        for code in util.COUNTRY_CODES_FOR_NON_GEO_REGIONS
    ]
    descriptions = [m.general_desc for m in every if m is not None and m.general_desc is not None]
    return min(n for d in descriptions for n in d.possible_length if n > 0)


_ENOUGH_DIGITS = re.compile(rf"(?:\D*\d){{{_fewest_digits()}}}")
"""Matches a text with as many digits (of any script) as the shortest valid number."""


def phones_in(text: str, region: str, limit: int = 3) -> list[str]:
    """Valid phone numbers written in ``text`` (E.164, in order, at most ``limit``)."""
    if _ENOUGH_DIGITS.match(text) is None:
        return []  # most messages: the matcher would scan them for nothing
    found: list[str] = []
    for match in phonenumbers.PhoneNumberMatcher(text, region):
        number = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
        if len(found) == limit:
            break
    return found
