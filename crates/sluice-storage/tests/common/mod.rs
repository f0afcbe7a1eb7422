pub mod azurite;
pub mod entra;
pub mod gcs_peers;
pub mod moto;
pub mod s3s_fs;
