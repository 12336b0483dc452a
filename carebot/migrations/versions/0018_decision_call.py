"""PostgreSQL: a bot's decision and its reply recorded in one call of a function
(``carebot_record_decision``), one round trip instead of eight; see carebot/store/decision_call.py

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# The rows come as JSON objects of their columns, built by the same Python as the rows the
# SQLite path writes (carebot.store.rows); the function fills in what only the transaction
# knows: the new ids, the links between the rows, the customer's channel, whether the bot
# introduces itself and whether the writer may send the reply at once. Each statement of a
# VOLATILE function reads a snapshot of its own (READ COMMITTED), taken after the one before
# it: the pending replies and the bot's earlier messages are read after the conversation's
# row lock is granted, as they are on the SQLite path.
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
    lease text
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
            NULL::text, NULL::text, NULL::text;
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
            NULL::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT
        EXISTS (SELECT 1 FROM outbox o
                WHERE o.conversation_id = p_conversation AND o.status = 'pending'),
        EXISTS (SELECT 1 FROM messages m
                WHERE m.conversation_id = p_conversation AND m.direction = 'out'
                  AND m.author = 'bot')
    INTO v_waiting, v_said;
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
        v_channel, v_user, v_outbox.lease::text;
END
$$
"""

SIGNATURE = (
    "carebot_record_decision(integer, integer, timestamptz, text[], json, json, json, json, "
    "text, text, text, timestamptz, json)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION {SIGNATURE}")
