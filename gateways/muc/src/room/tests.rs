//! Conversations with a room, stanza by stanza, after Prosody's scansion
//! scripts (muc_create_destroy, muc_password, issue505, …).

mod admin;
mod flows;
mod support;
