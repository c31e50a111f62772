-- A C2B payment names its account as the customer typed it: a username in any case, or the
-- AccountReference of a push. Both are looked up case-insensitively on every validation and
-- confirmation; without these indexes each one read every subscriber and every intent.
CREATE INDEX subscribers_username_lower_idx ON subscribers (lower(username));
CREATE INDEX payment_intents_account_reference_lower_idx ON payment_intents (lower(account_reference));
