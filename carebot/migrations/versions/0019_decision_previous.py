"""PostgreSQL: ``carebot_record_decision`` also returns the conversation's outbox row before
the reply it wrote (``previous``, 0 for none), so that a web chat worker knows whether its tabs
showed that one without reading the store again (one round trip a web chat reply)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# 0018's function with one more column returned: a function's result type cannot be changed
# in place, so it is dropped and created again (in the migration's transaction: no caller sees
# it missing). The text is 0018's as it was, apart from v_previous.
FUNCTION = r"""
CREATE FUNCTION carebot_record_decision(
    p_conversation integer,
    p_inbound integer,
    p_now timestamptz,
    p_silent text[],
    p_decision json,
    p_embedding json,
    p_message json,
    p_outbox json,
    p_text text,
    p_intro text,
    p_lease text,
    p_lease_until timestamptz,
    p_survey json
) RETURNS TABLE (
    outcome text,
    decision_id integer,
    message_id integer,
    outbox_id integer,
    reply_text text,
    channel text,
    external_user_id text,
    lease text,
    previous integer
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_state text;
    v_identity integer;
    v_channel text;
    v_user text;
    v_decision decisions;
    v_embedding message_embeddings;
    v_message messages;
    v_outbox outbox;
    v_survey surveys;
    v_waiting boolean;
    v_said boolean;
    v_previous integer;
BEGIN
    SELECT c.state, c.identity_id, i.channel, i.external_user_id
    INTO v_state, v_identity, v_channel, v_user
    FROM conversations c JOIN identities i ON i.id = c.identity_id
    WHERE c.id = p_conversation
    FOR UPDATE OF c;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'conversation % does not exist', p_conversation
            USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE messages SET handled_at = p_now WHERE id = p_inbound AND handled_at IS NULL;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'handled', NULL::integer, NULL::integer, NULL::integer, NULL::text,
            NULL::text, NULL::text, NULL::text, NULL::integer;
        RETURN;
    END IF;
    v_decision := json_populate_record(NULL::decisions, p_decision);
    v_decision.id := nextval('decisions_id_seq');
    INSERT INTO decisions SELECT v_decision.*;
    IF p_embedding IS NOT NULL THEN
        v_embedding := json_populate_record(NULL::message_embeddings, p_embedding);
        INSERT INTO message_embeddings SELECT v_embedding.*;
    END IF;
    IF p_message IS NULL OR v_state = ANY (p_silent) THEN
        RETURN QUERY SELECT 'silent', v_decision.id, NULL::integer, NULL::integer, NULL::text,
            NULL::text, NULL::text, NULL::text, NULL::integer;
        RETURN;
    END IF;
    SELECT
        EXISTS (SELECT 1 FROM outbox o
                WHERE o.conversation_id = p_conversation AND o.status = 'pending'),
        (SELECT coalesce(max(o.id), 0) FROM outbox o WHERE o.conversation_id = p_conversation),
        EXISTS (SELECT 1 FROM messages m
                WHERE m.conversation_id = p_conversation AND m.direction = 'out'
                  AND m.author = 'bot')
    INTO v_waiting, v_previous, v_said;
    v_message := json_populate_record(NULL::messages, p_message);
    v_message.id := nextval('messages_id_seq');
    v_message.channel := v_channel;
    v_message.decision_id := v_decision.id;
    v_message.text := CASE WHEN p_intro <> '' AND NOT v_said
                           THEN p_intro || E'\n\n' || p_text ELSE p_text END;
    INSERT INTO messages SELECT v_message.*;
    v_outbox := json_populate_record(NULL::outbox, p_outbox);
    v_outbox.id := nextval('outbox_id_seq');
    v_outbox.message_id := v_message.id;
    v_outbox.channel := v_channel;
    v_outbox.external_user_id := v_user;
    v_outbox.text := v_message.text;
    IF p_lease IS NOT NULL AND NOT v_waiting THEN
        v_outbox.lease := p_lease;
        v_outbox.locked_until := p_lease_until;
    ELSE
        v_outbox.lease := NULL;
        v_outbox.locked_until := NULL;
    END IF;
    INSERT INTO outbox SELECT v_outbox.*;
    IF p_survey IS NOT NULL THEN
        v_survey := json_populate_record(NULL::surveys, p_survey);
        v_survey.id := nextval('surveys_id_seq');
        v_survey.identity_id := v_identity;
        v_survey.message_id := v_message.id;
        v_survey.decision_id := v_decision.id;
        INSERT INTO surveys SELECT v_survey.*;
    END IF;
    RETURN QUERY SELECT 'queued', v_decision.id, v_message.id, v_outbox.id, v_message.text,
        v_channel, v_user, v_outbox.lease::text, v_previous;
END
$$
"""


def _before() -> ModuleType:
    """Migration 0018 (its function's text and signature: the arguments have not changed)."""
    spec = importlib.util.spec_from_file_location(
        "carebot_migration_0018", Path(__file__).with_name("0018_decision_call.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SIGNATURE: str = _before().SIGNATURE


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {SIGNATURE}")
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {SIGNATURE}")
        op.execute(_before().FUNCTION)
