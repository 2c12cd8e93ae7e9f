-- Each department's webhook signing secret (X-Wangge-Signature: HMAC-SHA256 of the
-- body). Kept readable, as the server must compute signatures; shown to the department
-- once, when it is made.
ALTER TABLE departments ADD COLUMN webhook_secret text;
