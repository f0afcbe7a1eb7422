pub mod moto;
pub mod s3s_fs;
pub mod azurite;
