pub mod catalog;
pub mod identity;
pub mod management;
pub mod oauth;
