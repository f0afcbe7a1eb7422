pub mod catalog;
pub mod management;
pub mod oauth;
