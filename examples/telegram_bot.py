"""A Telegram bot (aiogram 3) that mirrors every message and every reply into chatsessions.

    pip install './client[telegram]'    # from a checkout: the SDK and aiogram
    TELEGRAM_BOT_TOKEN=123:abc CHATSESSIONS_URL=http://localhost:8000 \\
    CHATSESSIONS_TOKEN=cs_… python examples/telegram_bot.py

It answers each text with an echo; replace ``reply_to`` with your assistant.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher
from aiogram.types import Message

from chatsessions_client import ChatSessionsClient, Mirrored
from chatsessions_client.adapters.telegram import adapt_message

log = logging.getLogger("telegram_bot")


def reply_to(text: str) -> str:
    return f"You said: {text}"


async def mirror(client: ChatSessionsClient, message: Message) -> None:
    adapted = adapt_message(message.model_dump(mode="json", by_alias=True, exclude_none=True))
    if not isinstance(adapted, Mirrored):
        log.info("not mirrored: %s", adapted.reason)
        return
    await client.mirror(adapted)


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"])
    dispatcher = Dispatcher()
    async with ChatSessionsClient(
        os.environ.get("CHATSESSIONS_URL", "http://localhost:8000"),
        os.environ["CHATSESSIONS_TOKEN"],
    ) as client:

        @dispatcher.message()
        async def on_message(message: Message) -> None:
            await mirror(client, message)
            if message.text:
                sent = await message.answer(reply_to(message.text))
                await mirror(client, sent)

        await dispatcher.start_polling(bot)


if __name__ == "__main__":
    asyncio.run(main())
