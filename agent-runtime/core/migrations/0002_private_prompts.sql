-- Prompts kept out of the public action records (an agent minted with private prompts): the
-- record carries only keccak256(prompt); the text stays here, with the runtime that ran the
-- action, so its owner can replay the action or disclose the prompt of one action.
CREATE TABLE private_prompts (
    -- keccak256 of the prompt's UTF-8 bytes, as in the record's prompt_hash
    prompt_hash     TEXT    NOT NULL PRIMARY KEY,
    prompt          TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
);
