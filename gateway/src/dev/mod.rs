//! Development aids: the header-echo application and the demo.

pub mod demo;
pub mod echo;
