pub mod s3s_fs;
