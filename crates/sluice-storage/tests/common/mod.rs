pub mod moto;
pub mod s3s_fs;
pub mod gcs_peers;
pub mod azurite;
pub mod entra;
