"""A Discord bot (discord.py) that mirrors every message and every reply into chatsessions.

    pip install './client[discord]'    # from a checkout: the SDK and discord.py
    DISCORD_BOT_TOKEN=… CHATSESSIONS_URL=http://localhost:8000 \\
    CHATSESSIONS_TOKEN=cs_… python examples/discord_bot.py

It needs the Message Content intent enabled for the bot in the developer portal.
"""

from __future__ import annotations

import logging
import os

import discord

from chatsessions_client import ChatSessionsClient, Mirrored
from chatsessions_client.adapters.discord import adapt_discord_py

log = logging.getLogger("discord_bot")


def reply_to(text: str) -> str:
    return f"You said: {text}"


class MirroringBot(discord.Client):
    def __init__(self, sessions: ChatSessionsClient) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents)
        self.sessions = sessions

    async def mirror(self, message: discord.Message) -> None:
        adapted = adapt_discord_py(message)
        if not isinstance(adapted, Mirrored):
            log.info("not mirrored: %s", adapted.reason)
            return
        await self.sessions.mirror(adapted)

    async def on_message(self, message: discord.Message) -> None:
        # The bot's own replies arrive here too, and are mirrored as the assistant's.
        await self.mirror(message)
        if not message.author.bot and message.content:
            await message.channel.send(reply_to(message.content))

    async def close(self) -> None:
        await self.sessions.close()
        await super().close()


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    sessions = ChatSessionsClient(
        os.environ.get("CHATSESSIONS_URL", "http://localhost:8000"),
        os.environ["CHATSESSIONS_TOKEN"],
    )
    MirroringBot(sessions).run(os.environ["DISCORD_BOT_TOKEN"])


if __name__ == "__main__":
    main()
