"""Messenger adapters. Each platform's SDK is imported only by its own module here."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters.base import Adapter, StaffAdapter
    from gateway.config import AnyChannel, DeliverySettings, StaffSettings


def create(account: str, settings: AnyChannel, limits: DeliverySettings) -> Adapter:
    """The adapter for one configured channel account (by its ``kind``)."""
    if settings.kind == "telegram":
        from adapters.telegram import TelegramAdapter

        return TelegramAdapter(account, settings, limits)
    if settings.kind == "vk":
        from adapters.vk import VkAdapter

        return VkAdapter(account, settings, limits)
    if settings.kind == "viber":
        from adapters.viber import ViberAdapter

        return ViberAdapter(account, settings, limits)
    if settings.kind == "whatsapp":
        from adapters.whatsapp import WhatsAppAdapter

        return WhatsAppAdapter(account, settings, limits)
    if settings.kind == "webchat":
        from adapters.webchat import WebchatAdapter

        return WebchatAdapter(account, settings, limits)
    raise ValueError(f"unknown channel kind {settings.kind!r}")  # pragma: no cover


def create_staff(account: str, settings: StaffSettings, limits: DeliverySettings) -> StaffAdapter:
    """The staff-group bot (always Telegram: the staff group is a Telegram forum)."""
    from adapters.telegram import TelegramAdapter

    return TelegramAdapter(account, settings, limits)


def create_relays(
    account: str, settings: StaffSettings, limits: DeliverySettings
) -> list[StaffAdapter]:
    """The relay bots (``staff.relay_bots``): the staff bot's settings, another token."""
    from adapters.telegram import TelegramAdapter

    return [
        TelegramAdapter(account, settings.model_copy(update={"token": token}), limits)
        for token in settings.relay_bots
    ]
