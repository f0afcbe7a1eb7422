pub mod catalog;
pub mod identity;
pub mod login;
pub mod management;
pub mod oauth;
pub mod view;
