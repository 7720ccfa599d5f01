"""The chat assistant: a conversation with an agent (the OpenAI Agents SDK) that manages the
user's tasks through the `/mcp` tools, over any model that speaks the Chat Completions protocol.

Conversations and their messages live in the database (`conversations`, `messages`), so any
instance serves any turn. The REST route (`routes/chat.py`) and ChatKit's protocol
(`routes/chatkit.py`, `chat/chatkit.py`) run the same agent on the same two tables.
"""
