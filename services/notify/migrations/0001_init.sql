-- notify's schema: which jobs have sent mail (idempotency), filled in by later migrations.
CREATE TABLE notify.sent_mail (
    idempotency_key text PRIMARY KEY,
    recipient_hash text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now()
);
