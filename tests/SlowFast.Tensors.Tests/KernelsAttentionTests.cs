using SlowFast.Tensors.Kernels;

namespace SlowFast.Tensors.Tests;

public class KernelsAttentionTests
{
    [Theory]
    [InlineData(1, 1, 1, 1, 16)]     // single token, single head
    [InlineData(17, 17, 4, 2, 64)]   // prefill, GQA 2:1
    [InlineData(70, 70, 7, 1, 24)]   // several key blocks, head dim not a multiple of 16
    [InlineData(3, 140, 14, 2, 64)]  // decoding 3 tokens against a longer cache
    [InlineData(37, 37, 28, 4, 128)] // the 7b head layout: 7 heads per kv head, rows of a tile span tokens
    [InlineData(21, 150, 21, 3, 84)] // head dim 64 + 16 + 4 (every column path), 3 query blocks
    [InlineData(1, 70, 28, 4, 128)]  // decoding one token: 7 rows per kv head, one padded tile
    // One query token takes its own path (heads four at a time, value rows in 64-float chunks):
    [InlineData(1, 300, 8, 1, 32)]   // 8 heads per kv head: two whole tiles
    [InlineData(1, 129, 6, 2, 48)]   // 3 heads per kv head (a partial tile), a 48-float chunk
    [InlineData(1, 64, 10, 2, 80)]   // 5 heads per kv head, chunks of 64 and 16
    [InlineData(1, 90, 4, 4, 16)]    // one head per kv head
    public void Causal_matches_reference(int t, int s, int hq, int hkv, int d)
    {
        var q = KernelsReference.Random(t * hq * d, 20, 2f);
        var k = KernelsReference.Random(s * hkv * d, 21, 2f);
        var v = KernelsReference.Random(s * hkv * d, 22);
        var positions = Enumerable.Range(s - t, t).ToArray();
        var o = new float[q.Length];
        Attention.Causal(q, positions, k, v, hq, hkv, d, o);
        KernelsReference.AssertClose(KernelsReference.Attention(q, positions, k, v, t, s, hq, hkv, d), o, 2e-6, 2e-5, "o");
    }

    [Fact]
    public void One_query_token_sees_only_the_keys_up_to_its_position()
    {
        int s = 90, hq = 14, hkv = 2, d = 64;
        var q = KernelsReference.Random(hq * d, 31, 3f);
        var k = KernelsReference.Random(s * hkv * d, 32, 3f);
        var v = KernelsReference.Random(s * hkv * d, 33);
        var o = new float[q.Length];
        Attention.Causal(q, new[] { 40 }, k, v, hq, hkv, d, o);
        KernelsReference.AssertClose(KernelsReference.Attention(q, new[] { 40 }, k, v, 1, s, hq, hkv, d), o, 2e-6, 2e-5, "o");
    }

    [Fact]
    public void Causal_respects_arbitrary_positions()
    {
        int t = 5, s = 90, hq = 4, hkv = 4, d = 32;
        var q = KernelsReference.Random(t * hq * d, 23, 3f);
        var k = KernelsReference.Random(s * hkv * d, 24, 3f);
        var v = KernelsReference.Random(s * hkv * d, 25);
        var positions = new[] { 0, 63, 64, 10, 89 };
        var o = new float[q.Length];
        Attention.Causal(q, positions, k, v, hq, hkv, d, o);
        KernelsReference.AssertClose(KernelsReference.Attention(q, positions, k, v, t, s, hq, hkv, d), o, 2e-6, 2e-5, "o");
        Assert.Throws<ArgumentOutOfRangeException>(() => Attention.Causal(q, new[] { 0, 1, 2, 3, 90 }, k, v, hq, hkv, d, o));
    }

    [Theory]
    [InlineData(1, 1, 2, 1, 16)]
    [InlineData(9, 200, 6, 3, 48)]
    [InlineData(33, 65, 4, 1, 128)]
    [InlineData(18, 131, 7, 1, 20)]  // 7 heads sharing a kv head, key tail of 3, head dim tail of 4
    [InlineData(1, 200, 12, 4, 64)]  // one query token (its own path)
    public void Full_matches_reference(int t, int s, int hq, int hkv, int d)
    {
        var q = KernelsReference.Random(t * hq * d, 26, 2f);
        var k = KernelsReference.Random(s * hkv * d, 27, 2f);
        var v = KernelsReference.Random(s * hkv * d, 28);
        var o = new float[q.Length];
        Attention.Full(q, k, v, hq, hkv, d, o);
        KernelsReference.AssertClose(KernelsReference.Attention(q, null, k, v, t, s, hq, hkv, d), o, 2e-6, 2e-5, "o");
    }
}
