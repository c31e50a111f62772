-- Buying a voucher on the hotspot login page (issue 6).
--
-- * router_packages: what each router's hotspot page sells, in the order shown.
-- * A purchase is a batch of one voucher (origin 'portal') made before the STK Push, whose
--   voucher row is suspended (radiusd rejects it) and whose batch has no paid_at until the
--   payment comes: the ledger then makes it usable (status active, paid_at set) in the
--   payment's own transaction. The intent's subscriber is that voucher, so every rule of
--   the ledger (one credit per receipt, the C2B copy, STK Query) applies unchanged.
-- * The intent of such a purchase has purpose 'voucher', the router it was bought on, the
--   buyer's address, and a poll token: the only way to learn the code.

CREATE TABLE router_packages (
    router_id bigint NOT NULL CONSTRAINT router_packages_router_id_fkey REFERENCES routers (id) ON DELETE CASCADE,
    plan_id   bigint NOT NULL CONSTRAINT router_packages_plan_id_fkey REFERENCES plans (id) ON DELETE CASCADE,
    position  integer NOT NULL,
    PRIMARY KEY (router_id, plan_id)
);
CREATE INDEX router_packages_plan_idx ON router_packages (plan_id);

ALTER TABLE payment_intents
    ADD COLUMN purpose text NOT NULL DEFAULT 'subscriber'
        CONSTRAINT payment_intents_purpose_check CHECK (purpose IN ('subscriber', 'voucher')),
    ADD COLUMN router_id bigint
        CONSTRAINT payment_intents_router_id_fkey REFERENCES routers (id) ON DELETE SET NULL,
    ADD COLUMN client_ip inet,
    -- base64url of 32 random bytes; only a voucher purchase has one
    ADD COLUMN poll_token text CONSTRAINT payment_intents_poll_token_key UNIQUE,
    ADD CONSTRAINT payment_intents_poll_token_check
        CHECK (poll_token IS NULL OR (purpose = 'voucher' AND length(poll_token) >= 43));

-- NULL: a portal voucher not paid yet (not usable), or a printed batch (paid for in the
-- shop; the column says nothing for those).
ALTER TABLE voucher_batches ADD COLUMN paid_at timestamptz;
CREATE INDEX voucher_batches_paid_idx ON voucher_batches (paid_at) WHERE origin = 'portal';
