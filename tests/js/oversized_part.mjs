// UploadLayerPart with a part too large for pier's 28 MiB API body limit, sent by the AWS SDK for
// JavaScript v3 as any user would send it. Prints one JSON line: how the call ended, as the SDK saw it.
//   node oversized_part.mjs <endpoint> <access key id> <secret> <repository> <part MiB>
import {
  ECRPUBLICClient,
  InitiateLayerUploadCommand,
  UploadLayerPartCommand,
} from "@aws-sdk/client-ecr-public";

const [endpoint, accessKeyId, secretAccessKey, repositoryName, mib] = process.argv.slice(2);
const client = new ECRPUBLICClient({
  endpoint,
  region: "us-east-1",
  credentials: { accessKeyId, secretAccessKey },
});
const { uploadId } = await client.send(new InitiateLayerUploadCommand({ repositoryName }));
const layerPartBlob = Buffer.alloc(Math.round(Number(mib) * 1024 * 1024), 7);
try {
  await client.send(
    new UploadLayerPartCommand({
      repositoryName,
      uploadId,
      partFirstByte: 0,
      partLastByte: layerPartBlob.length - 1,
      layerPartBlob,
    }),
  );
  console.log(JSON.stringify({ outcome: "success" }));
} catch (error) {
  console.log(
    JSON.stringify({
      outcome: "error",
      name: error.name,
      code: error.code ?? null,
      message: String(error.message),
      status: error.$metadata?.httpStatusCode ?? null,
      attempts: error.$metadata?.attempts ?? null,
    }),
  );
}
