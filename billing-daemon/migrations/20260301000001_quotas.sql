-- Quotas and simultaneous use (issue 3): what a plan allows, and the time a subscriber has
-- left. The accounting ingest counts data_remaining_bytes and time_remaining_seconds down;
-- the snapshot carries them (and each subscriber's open-session count) to rlm_jasiyo.

ALTER TABLE plans
    -- most sessions a subscriber may have open at once; NULL = unlimited
    ADD COLUMN simultaneous_use integer DEFAULT 1
        CONSTRAINT plans_simultaneous_use_check CHECK (simultaneous_use >= 1),
    -- Mikrotik-Rate-Limit once the data allowance is used up (fair-use policy);
    -- NULL = reject at zero data
    ADD COLUMN fup_rate_limit text
        CONSTRAINT plans_fup_rate_limit_check CHECK (jasiyo_valid_rate_limit(fup_rate_limit)),
    -- time a subscription allows (online seconds); NULL = no time allowance
    ADD COLUMN time_allowance_seconds bigint
        CONSTRAINT plans_time_allowance_seconds_check CHECK (time_allowance_seconds > 0);

ALTER TABLE subscribers
    -- online seconds left; NULL = unlimited
    ADD COLUMN time_remaining_seconds bigint
        CONSTRAINT subscribers_time_remaining_seconds_check CHECK (time_remaining_seconds >= 0);
