//! The copilot: answers questions about orders and exceptions with tools over the core,
//! the store and retrieval, through a language model or offline templates.

pub mod model;
pub mod openai;
