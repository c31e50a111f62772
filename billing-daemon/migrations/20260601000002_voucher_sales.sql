-- Vouchers, the daemon's side (issue 6): what the activation and the sales report need.

-- The device a voucher whose plan has bind_first_mac was first used from (its
-- Calling-Station-Id). Not subscribers.mac: that column is UNIQUE and is the MAC-login
-- index, so a phone that used two vouchers would collide, and a bound voucher would turn
-- into a MAC login for that phone. rlm_jasiyo's snapshot mapping reads this one.
ALTER TABLE subscribers ADD COLUMN voucher_mac macaddr;

-- The price of one voucher when the batch was made: a sale stays at what it was sold for
-- when the plan's price is edited later. NULL (batches made by hand): the plan's price.
ALTER TABLE voucher_batches
    ADD COLUMN price_kes bigint CONSTRAINT voucher_batches_price_kes_check CHECK (price_kes >= 0);

CREATE INDEX voucher_batches_created_idx ON voucher_batches (created_at);
