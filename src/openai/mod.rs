//! OpenAI wire types. Only the fields the proxy reads are typed; everything
//! else is kept in `rest` so new OpenAI fields pass through untouched.

pub mod chat;
pub mod models;
pub mod stream;
