"""Files the gateway serves to messengers that fetch media by URL (Viber)."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.errors import PermanentError
from gateway.media import MediaStore
from tests.conftest import StartGateway


async def test_published_files_open_only_with_their_signature_until_they_expire(
    start_gateway: StartGateway,
) -> None:
    running = await start_gateway(workers=False)
    store = running.app.delivery.media
    assert store.public_url == running.url  # go_live's public address
    data = b"\x89PNG\r\n\x1a\n" + b"x" * 5000
    url = await store.publish(data, "фото чека.png")
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as response:
            assert response.status == 200 and await response.read() == data
            assert response.content_type == "image/png"
        for tampered in (
            url.replace("s=", "s=0"),
            url.replace("e=", "e=1"),
            url.replace(".png", ".exe"),
            url.split("?")[0],
        ):
            async with http.get(tampered) as response:
                assert response.status == 403, tampered
        earlier = MediaStore(store.redis, running.settings, clock=lambda: 1_000_000)
        earlier.public_url = store.public_url
        gone = await earlier.publish(b"old", "a.txt")
        async with http.get(gone) as response:  # signed, but expired long ago
            assert response.status == 403
        await store.redis.delete(*[k async for k in store.redis.scan_iter("gw:media:*")])
        async with http.get(url) as response:  # signed and fresh, but evicted
            assert response.status == 404


async def test_without_a_public_address_sending_files_by_url_is_refused(
    start_gateway: StartGateway,
) -> None:
    running = await start_gateway(workers=False)
    store = MediaStore(running.app.delivery.media.redis, running.settings)
    assert store.public_url is None
    with pytest.raises(PermanentError) as refused:
        await store.publish(b"x", "a.jpg")
    assert "public_url" in refused.value.reason
