-- Welcome offers: which showing a coupon was claimed from, and the visit each showing
-- belongs to.

-- A coupon claimed from a welcome offer names the showing (offer_deliveries row) it came
-- from; each showing can be claimed once.
ALTER TABLE coupons ADD COLUMN delivery_id INTEGER REFERENCES offer_deliveries (id);
CREATE UNIQUE INDEX coupons_delivery ON coupons (delivery_id) WHERE delivery_id IS NOT NULL;

-- The visit event (outbox event id) that led to the showing.
ALTER TABLE offer_deliveries ADD COLUMN visit_event_id TEXT;
